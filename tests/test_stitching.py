"""Joining the cores of one tile row into the full-width patch the class raster writer takes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.stitching import Patch, core_patch, join_row
from geoseg.tiling import Span, plan_tiles


def test_join_row_concatenates_cores_left_to_right() -> None:
    rows = Span(4, 6)
    patches = [
        Patch(rows, Span(0, 2), np.array([[1, 2], [5, 6]], dtype="uint8")),
        Patch(rows, Span(2, 3), np.array([[3], [7]], dtype="uint8")),
        Patch(rows, Span(3, 4), np.array([[4], [8]], dtype="uint8")),
    ]
    row = join_row(patches, 4)
    assert (row.rows, row.cols) == (rows, Span(0, 4))
    assert row.data.dtype == np.uint8
    assert row.data.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


@pytest.mark.parametrize(
    ("cols", "width", "needle"),
    [
        ([Span(0, 2), Span(3, 4)], 4, "do not partition"),  # a gap
        ([Span(2, 4), Span(0, 2)], 4, "do not partition"),  # out of order
        ([Span(0, 2), Span(2, 3)], 4, "cover 3 of 4 columns"),  # short of the width
    ],
)
def test_join_row_refuses_cores_that_do_not_partition_the_row(
    cols: list[Span], width: int, needle: str
) -> None:
    patches = [Patch(Span(0, 1), c, np.zeros((1, c.size), dtype="uint8")) for c in cols]
    with pytest.raises(ValueError, match=needle):
        join_row(patches, width)


def test_join_row_refuses_cores_of_different_rows() -> None:
    patches = [
        Patch(Span(0, 2), Span(0, 1), np.zeros((2, 1), dtype="uint8")),
        Patch(Span(2, 4), Span(1, 2), np.zeros((2, 1), dtype="uint8")),
    ]
    with pytest.raises(ValueError, match="do not partition"):
        join_row(patches, 2)


@st.composite
def plan_case(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    tile = draw(st.integers(8, 48))
    overlap = draw(st.integers(0, (tile - 1) // 2))
    return draw(st.integers(1, 120)), draw(st.integers(1, 120)), tile, overlap, draw(st.integers())


@settings(max_examples=100, deadline=None)
@given(plan_case())
def test_joined_rows_rebuild_the_map(case: tuple[int, int, int, int, int]) -> None:
    height, width, tile, overlap, seed = case
    # every tile sees the same map: joining their cores row by row must give it back exactly
    truth = np.random.default_rng(abs(seed)).integers(0, 255, (height, width), dtype=np.uint8)
    plan = plan_tiles(height, width, tile, overlap)
    rebuilt = np.full((height, width), 255, dtype=np.uint8)
    for i in range(len(plan.row_spans)):
        row_tiles = [t for t in plan if t.row == i]
        chips = [truth[t.rows.start : t.rows.stop, t.cols.start : t.cols.stop] for t in row_tiles]
        row = join_row([core_patch(t, c) for t, c in zip(row_tiles, chips, strict=True)], width)
        assert row.cols == Span(0, width) and row.data.shape == (row.rows.size, width)
        assert (rebuilt[row.rows.start : row.rows.stop] == 255).all()  # no row written twice
        rebuilt[row.rows.start : row.rows.stop] = row.data
    assert np.array_equal(rebuilt, truth)
