"""``import geoseg`` shortens OpenMP's spin-wait, and leaves a user's own OpenMP settings alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, geoseg; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "10000 None"),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "None ACTIVE"),
        ({"GOMP_SPINCOUNT": "300000"}, "300000 None"),
    ],
)
def test_spin_count_is_set_only_where_the_user_said_nothing(
    given: dict[str, str], expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(given)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected
