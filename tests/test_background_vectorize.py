"""Vectorizing beside the model: the row buffer, and the same polygons as vectorizing after."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import geoseg.pipeline
from geoseg.pipeline import PredictOptions, predict
from geoseg.streaming import RowBuffer


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 120),
    chunk=st.integers(1, 17),
    window=st.integers(1, 40),
    step=st.integers(1, 40),
)
def test_row_buffer_serves_windows_in_order_with_bounded_rows(
    height: int, chunk: int, window: int, step: int
) -> None:
    data = np.arange(height * 7, dtype=np.int32).reshape(height, 7)
    max_rows = window + chunk  # more than the tallest window
    buffer = RowBuffer(height, max_rows)
    held: list[int] = []

    def produce() -> None:
        for first in range(0, height, chunk):
            buffer.append(first, data[first : first + chunk])
            held.append(buffer._end - buffer._first)

    producer = threading.Thread(target=produce)
    producer.start()
    for top in range(0, height, step):
        got = buffer.read(top, window, 2, 4)
        assert np.array_equal(got, data[top : top + window, 2:6])
    # like the vectorizer, the consumer reads through to the last row
    assert np.array_equal(buffer.read(height - 1, 1, 0, 7), data[-1:])
    producer.join(timeout=10)
    assert not producer.is_alive()
    # append waits while max_rows are held, so at most one chunk more is ever held
    assert max(held) < max_rows + chunk


def test_row_buffer_abort_releases_both_sides() -> None:
    buffer = RowBuffer(100, max_rows=10)
    buffer.append(0, np.zeros((10, 3)))
    blocked = threading.Thread(target=buffer.append, args=(10, np.zeros((10, 3))))
    blocked.start()  # waits: 10 rows held
    blocked.join(timeout=0.2)
    assert blocked.is_alive()
    buffer.abort()
    blocked.join(timeout=5)
    assert not blocked.is_alive()
    with pytest.raises(RuntimeError, match="abandoned"):
        buffer.read(50, 10, 0, 3)
    with pytest.raises(ValueError, match="out of order"):
        RowBuffer(10, 5).append(3, np.zeros((1, 1)))


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of 32 px, so a test-sized scene spans many blocks and worker processes start
    monkeypatch.setattr(geoseg.pipeline, "VECTORIZE_BLOCK_SIZE", 32)


def test_vectorizing_beside_the_model_gives_the_polygons_of_vectorizing_after(
    tmp_path: Path, fake_model: Path, scene_factory: Callable[..., Path], small_blocks: None
) -> None:
    scene = scene_factory(height=150, width=110, seed=3)
    runs = {}
    for workers in (1, 2):  # 1: after the model, from the class raster; 2: beside it
        out = tmp_path / f"lc{workers}.gpkg"
        result = predict(
            scene,
            out,
            model=fake_model,
            options=PredictOptions(
                tile_size=64, overlap=8, min_area_m2=200, vectorize_workers=workers
            ),
        )
        assert ("vectorize_wait" in result.timings) == (workers == 2)
        runs[workers] = pyogrio.read_dataframe(out, layer="landcover")
    after, beside = runs[1], runs[2]
    assert len(after) == len(beside) > 10
    assert list(after.class_id) == list(beside.class_id)
    assert np.allclose(after.area_m2, beside.area_m2, rtol=0, atol=1e-6)
    assert all(shapely.equals_exact(after.geometry.values, beside.geometry.values, tolerance=0))


@pytest.mark.parametrize("left", [-3, 2])  # early, or once rows of polygons were written
def test_a_crash_with_the_background_vectorizer_running_leaves_nothing(
    tmp_path: Path,
    fake_model: Path,
    scene_factory: Callable[..., Path],
    small_blocks: None,
    left: int,
) -> None:
    scene = scene_factory(height=200, width=100)
    out = tmp_path / "out"
    out.mkdir()

    def explode(done: int, total: int) -> None:
        if left < 0 and done >= 3:
            raise RuntimeError("disk on fire")
        if left > 0 and done >= total - left:
            # crash only once the GeoPackage holds rows of polygons (its temporary exists)
            deadline = time.monotonic() + 120  # its workers run at the lowest CPU priority
            while not any(".tmp-" in p.name for p in out.iterdir()):
                assert time.monotonic() < deadline, "no GeoPackage rows were written"
                time.sleep(0.05)
            raise RuntimeError("disk on fire")

    options = PredictOptions(tile_size=32, overlap=4, vectorize_workers=2)
    with pytest.raises(RuntimeError, match="disk on fire"):
        predict(scene, out / "lc.gpkg", model=fake_model, options=options, progress=explode)
    assert sorted(p.name for p in out.iterdir()) == []
