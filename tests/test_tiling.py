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


@st.composite
def aligned_case(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    multiple = draw(st.sampled_from([2, 4, 8, 32]))
    tile = multiple * draw(st.integers(-(-8 // multiple), 160 // multiple))
    overlap = draw(st.integers(0, (tile - 1) // 2))
    return draw(st.integers(1, 900)), tile, overlap, draw(st.integers(-5000, 5000)), multiple


@settings(max_examples=400, deadline=None)
@given(aligned_case())
def test_tiles_start_on_the_absolute_grid_so_chips_need_no_padding(
    case: tuple[int, int, int, int, int],
) -> None:
    length, tile, overlap, origin, multiple = case
    spans = axis_spans(length, tile, overlap, origin, multiple)
    covered = np.zeros(length, dtype=int)
    for k, (read, core) in enumerate(spans):
        assert 0 <= read.start < read.stop <= length and read.size <= tile
        assert read.start <= core.start < core.stop <= read.stop
        covered[core.start : core.stop] += 1
        if k > 0:
            assert core.start - read.start >= overlap // 2
        if k < len(spans) - 1:
            assert read.stop - core.stop >= overlap // 2
    assert (covered == 1).all()
    assert spans[-1][0].stop == length
    plan = plan_tiles(length, 3, tile, overlap, (origin, 0), multiple)
    rows, _ = plan.chip_shape
    assert rows % multiple == 0
    for t in plan:  # every tile fits its chip after the padding that puts it on the grid
        assert plan.before(t)[0] + t.rows.size <= rows
        assert (origin + t.rows.start - plan.before(t)[0]) % multiple == 0
    if length > tile:
        plain = axis_spans(length, tile, overlap)
        on_grid = all((origin + read.start) % multiple == 0 for read, _ in spans[1:])
        # tiles on the grid, whose chips are the tiles themselves, or else the plain plan
        assert (on_grid and rows == tile) or spans == plain
        # and never more pixels through the network than the plain plan's padded chips
        assert len(spans) * rows <= len(plain) * (tile + multiple)


def test_usual_tiles_put_fewer_pixels_through_the_network() -> None:
    # 512 px tiles overlapping by 64 for a U-Net (multiple 32), scenes of 600-6000 px at
    # every offset on the grid: chips padded to the grid were 544 px; on the grid, mostly 512
    planned = plain = 0
    for length in range(600, 6000, 97):
        for origin in range(0, 32, 5):
            plan = plan_tiles(length, 3, 512, 64, (origin, 0), 32)
            planned += len(plan.row_spans) * plan.chip_shape[0]
            plain += len(axis_spans(length, 512, 64)) * 544
    assert planned <= 0.95 * plain  # per axis: 0.943, so 0.89 of the pixels


def test_small_scene_is_one_padded_tile() -> None:
    plan = plan_tiles(3, 5, 64, 8)
    (tile,) = list(plan)
    assert (tile.rows.size, tile.cols.size, plan.tile_size) == (3, 5, 64)


@pytest.mark.parametrize(("tile", "overlap"), [(4, 0), (64, 32), (64, -1)])
def test_bad_plans_are_config_errors(tile: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        plan_tiles(100, 100, tile, overlap)
