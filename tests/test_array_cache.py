"""The teacher-target cache: arrays come back bit for bit, only for the key they were kept with."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import S2_BANDS, make_card, save_fake_model, write_raster

from geoseg.io.array_cache import file_identity, read_array_cache, write_array_cache
from geoseg.models.loading import load_model
from geoseg.training import prepare as prepare_module
from geoseg.training.config import SceneConfig
from geoseg.training.prepare import prepare_scene


def test_arrays_round_trip_exactly_for_their_key_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {"soft": rng.random((3, 5, 7), dtype=np.float32), "valid": rng.random((5, 7)) > 0.5}
    path = tmp_path / "c.npz"
    write_array_cache(path, {"teacher": "abc", "n": 1}, arrays)
    back = read_array_cache(path, {"n": 1, "teacher": "abc"})  # key order does not matter
    assert back is not None and back.keys() == arrays.keys()
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value)
    assert read_array_cache(path, {"teacher": "abd", "n": 1}) is None  # stale
    assert read_array_cache(tmp_path / "missing.npz", {}) is None
    path.write_bytes(b"not a zip")
    assert read_array_cache(path, {"teacher": "abc", "n": 1}) is None  # corrupt: recompute


def test_a_changed_file_has_another_identity(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"1234")
    before = file_identity(path)
    os.utime(path, ns=(1, 1))
    assert file_identity(path) != before


def test_the_teacher_runs_once_per_scene_and_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    image = write_raster(
        tmp_path / "img.tif", rng.integers(100, 3000, (6, 24, 24), dtype=np.uint16)
    )
    card = make_card(bands=S2_BANDS)
    teacher = load_model(save_fake_model(tmp_path / "teacher.pt", card))
    calls = []
    compute = prepare_module._teacher_targets

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return compute(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(prepare_module, "_teacher_targets", counted)
    spec = SceneConfig(name="s", image=str(image))
    first = prepare_scene(spec, S2_BANDS, card.classes, tmp_path / "work", teacher=teacher)
    again = prepare_scene(spec, S2_BANDS, card.classes, tmp_path / "work", teacher=teacher)
    assert len(calls) == 1
    assert first.soft is not None and again.soft is not None
    assert np.array_equal(first.soft, again.soft) and np.array_equal(first.labels, again.labels)
    # another teacher is another key: computed again
    other = load_model(save_fake_model(tmp_path / "other.pt", card, seed=1))
    prepare_scene(spec, S2_BANDS, card.classes, tmp_path / "work", teacher=other)
    assert len(calls) == 2
