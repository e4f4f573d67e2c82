"""Property tests of tile planning: cores partition the scene, margins are respected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.errors import ConfigError
from geoseg.tiling import axis_spans, plan_tiles


@st.composite
def axis_case(draw: st.DrawFn) -> tuple[int, int, int]:
    tile = draw(st.integers(8, 96))
    overlap = draw(st.integers(0, (tile - 1) // 2))
    length = draw(st.integers(1, 600))
    return length, tile, overlap


@settings(max_examples=300, deadline=None)
@given(axis_case())
def test_cores_partition_axis_and_keep_margin(case: tuple[int, int, int]) -> None:
    length, tile, overlap = case
    spans = axis_spans(length, tile, overlap)
    covered = np.zeros(length, dtype=int)
    for k, (read, core) in enumerate(spans):
        assert 0 <= read.start < read.stop <= length
        assert read.size == min(tile, length)
        assert read.start <= core.start < core.stop <= read.stop
        covered[core.start : core.stop] += 1
        if k > 0:  # an internal edge: the core keeps overlap // 2 away from it
            assert core.start - read.start >= overlap // 2
        if k < len(spans) - 1:
            assert read.stop - core.stop >= overlap // 2
    assert (covered == 1).all()
    assert spans[0][0].start == 0 and spans[-1][0].stop == length  # last window snaps to the edge


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), axis_case())
def test_plan_tiles_cover_scene_once(height: int, width: int, case: tuple[int, int, int]) -> None:
    _, tile, overlap = case
    plan = plan_tiles(height, width, tile, overlap)
    owner = np.zeros((height, width), dtype=int)
    for t in plan:
        owner[t.core_rows.start : t.core_rows.stop, t.core_cols.start : t.core_cols.stop] += 1
    assert (owner == 1).all()
    assert len(list(plan)) == len(plan) == plan.grid_shape[0] * plan.grid_shape[1]


def test_small_scene_is_one_padded_tile() -> None:
    plan = plan_tiles(3, 5, 64, 8)
    (tile,) = list(plan)
    assert (tile.rows.size, tile.cols.size, plan.tile_size) == (3, 5, 64)


@pytest.mark.parametrize(("tile", "overlap"), [(4, 0), (64, 32), (64, -1)])
def test_bad_plans_are_config_errors(tile: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        plan_tiles(100, 100, tile, overlap)
