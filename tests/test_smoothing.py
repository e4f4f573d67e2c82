"""The majority filter: what it does to a pixel, and streamed rows equal the whole map."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.smoothing import StreamingMajority, majority_filter
from geoseg.stitching import Patch
from geoseg.tiling import Span


def naive_majority(labels: np.ndarray, size: int) -> np.ndarray:
    """The rule written out pixel by pixel."""
    halo = size // 2
    out = labels.copy()
    height, width = labels.shape
    for r in range(height):
        for c in range(width):
            own = labels[r, c]
            if own == 255:
                continue
            window = labels[max(r - halo, 0) : r + halo + 1, max(c - halo, 0) : c + halo + 1]
            values, counts = np.unique(window[window != 255], return_counts=True)
            best = counts.max()
            if counts[values == own][0] == best:
                continue
            out[r, c] = values[counts == best].min()
    return out


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 30),
    width=st.integers(1, 30),
    classes=st.integers(1, 5),
    size=st.sampled_from([3, 5, 7]),
    seed=st.integers(0, 2**16),
    cuts=st.lists(st.integers(1, 29), max_size=6),
)
def test_streamed_rows_equal_the_whole_map_and_the_rule(
    height: int, width: int, classes: int, size: int, seed: int, cuts: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=(height, width)).astype(np.uint8)
    labels[rng.random((height, width)) < 0.15] = 255
    whole = majority_filter(labels, size)
    np.testing.assert_array_equal(whole, naive_majority(labels, size))
    # rows arrive in patches of any heights, as tile rows do
    edges = sorted({0, height, *(c for c in cuts if c < height)})
    stream = StreamingMajority(size, height)
    out = np.full_like(labels, 77)
    released = []
    for start, stop in itertools.pairwise(edges):
        for patch in stream.push(Patch(Span(start, stop), Span(0, width), labels[start:stop])):
            released.append((patch.rows.start, patch.rows.stop))
            out[patch.rows.start : patch.rows.stop] = patch.data
    assert released[0][0] == 0 and released[-1][1] == height
    assert all(a[1] == b[0] for a, b in itertools.pairwise(released))
    np.testing.assert_array_equal(out, whole)


def test_a_class_only_in_the_rows_above_still_wins() -> None:
    # found by the property test: the rows released last held no 2, the rows above them did
    labels = np.array([[2, 2], [255, 3], [0, 4]], np.uint8)
    stream = StreamingMajority(3, 3)
    out = [p.data for p in stream.push(Patch(Span(0, 2), Span(0, 2), labels[:2]))]
    out += [p.data for p in stream.push(Patch(Span(2, 3), Span(0, 2), labels[2:]))]
    np.testing.assert_array_equal(np.concatenate(out), majority_filter(labels, 3))
    assert majority_filter(labels, 3)[1, 1] == 2


def test_it_removes_specks_and_keeps_nodata() -> None:
    labels = np.zeros((9, 9), np.uint8)
    labels[4, 4] = 3  # a single pixel of another class
    labels[0, :] = 255
    out = majority_filter(labels, 3)
    assert out[4, 4] == 0 and (out[0] == 255).all()
    with pytest.raises(ValueError, match="odd window size"):
        majority_filter(labels, 4)
