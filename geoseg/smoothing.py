"""Majority (mode) filtering of a class map, whole or streamed row by row, with the same result.

Each valid pixel takes the class most frequent among the valid pixels of the ``size x size``
window around it; a tie that includes the pixel's own class keeps it, other ties go to the lowest
class id. Nodata stays nodata and is never counted; outside the map counts as nodata. It removes
the single pixels and ragged edges that the minimum-area rule (which merges whole small
polygons) leaves, and it complements that rule rather than replacing it.

:class:`StreamingMajority` filters the rows of a map as they arrive, holding back ``size // 2``
rows until the rows below them are known, so a streamed map equals :func:`majority_filter` of
the whole map pixel for pixel (a property test checks it).
"""

from __future__ import annotations

import numpy as np

from geoseg.core import NODATA
from geoseg.stitching import Patch
from geoseg.tiling import Span


def check_size(size: int) -> None:
    """Refuse a window that is not an odd size from 3 to 15.

    Raises
    ------
    ValueError
        With a one-line message.
    """
    if size < 3 or size > 15 or size % 2 == 0:
        raise ValueError(f"--smooth {size}: give an odd window size from 3 to 15 pixels")


def majority_filter(labels: np.ndarray, size: int, nodata: int = NODATA) -> np.ndarray:
    """The majority-filtered copy of a ``(H, W)`` uint8 class map.

    >>> m = np.array([[1, 1, 1], [1, 2, 1], [1, 1, 255]], np.uint8)
    >>> majority_filter(m, 3).tolist()
    [[1, 1, 1], [1, 1, 1], [1, 1, 255]]
    """
    check_size(size)
    return _filter_rows(labels, size, nodata, 0, labels.shape[0])


def _filter_rows(labels: np.ndarray, size: int, nodata: int, first: int, stop: int) -> np.ndarray:
    """Filter rows ``first:stop`` of ``labels`` (rows outside the array are nodata)."""
    halo = size // 2
    height, width = labels.shape
    top, bottom = max(first - halo, 0), min(stop + halo, height)
    padded = np.full((stop - first + 2 * halo, width + 2 * halo), nodata, np.uint8)
    offset = top - (first - halo)
    padded[offset : offset + bottom - top, halo : halo + width] = labels[top:bottom]
    centre = labels[first:stop]
    # every class of the window counts, also one found only in the rows above or below
    classes = [int(c) for c in np.unique(labels[top:bottom]) if c != nodata]
    if not classes:
        return centre.copy()
    rows = stop - first
    best = np.zeros((rows, width), np.int16)
    winner = centre.copy()
    own = np.zeros((rows, width), np.int16)
    for value in classes:
        hits = (padded == value).astype(np.int16)
        # box sum by cumulative sums: rows, then columns
        summed = np.cumsum(np.pad(hits, ((1, 0), (1, 0))), axis=0)
        summed = summed[size:] - summed[:-size]
        summed = np.cumsum(summed, axis=1)
        counts = summed[:, size:] - summed[:, :-size]
        better = counts > best
        winner[better] = value
        best = np.maximum(best, counts)
        own[centre == value] = counts[centre == value]
    keep = own >= best  # a tie with the pixel's own class keeps it
    result = np.where(keep, centre, winner).astype(np.uint8)
    result[centre == nodata] = nodata
    return result


class StreamingMajority:
    """Majority-filter row patches as they arrive, in order; the output equals the whole map's.

    Parameters
    ----------
    size : int
        Odd window side in pixels.
    height : int
        Rows of the whole map (the last rows are released when it is reached).
    nodata : int
        Nodata class value.
    """

    def __init__(self, size: int, height: int, nodata: int = NODATA) -> None:
        check_size(size)
        self.size = size
        self.halo = size // 2
        self.height = height
        self.nodata = nodata
        self._rows: np.ndarray | None = None  # buffered rows, from row self._start
        self._start = 0
        self._done = 0  # rows released so far
        self._cols: Span | None = None

    def push(self, patch: Patch) -> list[Patch]:
        """Add the next row patch (full width); return the patches whose rows are now final."""
        if patch.rows.start != self._start + (0 if self._rows is None else len(self._rows)):
            raise ValueError("row patches must arrive in order, without gaps")
        self._cols = patch.cols
        data = patch.data
        self._rows = data.copy() if self._rows is None else np.concatenate([self._rows, data])
        known = self._start + len(self._rows)
        ready = known if known >= self.height else known - self.halo
        return self._release(ready)

    def _release(self, ready: int) -> list[Patch]:
        if self._rows is None or ready <= self._done:
            return []
        assert self._cols is not None
        rows = self._rows
        first, stop = self._done - self._start, ready - self._start
        filtered = _filter_rows(rows, self.size, self.nodata, first, stop)
        out = Patch(Span(self._done, ready), self._cols, filtered)
        self._done = ready
        # keep only the rows later windows still need
        keep_from = max(self._done - self.halo, self._start)
        self._rows = rows[keep_from - self._start :]
        self._start = keep_from
        return [out]
