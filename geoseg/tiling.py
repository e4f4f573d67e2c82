"""Pixel-space tile planning: which window each tile reads and which core it owns.

Overlap ownership is decided once, here. Adjacent tiles split their overlap at its midpoint, so the
cores partition the scene exactly and every core pixel lies at least ``overlap // 2`` pixels from
any tile edge that is not a scene edge. A model whose receptive field radius fits in that margin
therefore predicts each pixel exactly as it would on the whole image: no seams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from geoseg.errors import ConfigError


@dataclass(frozen=True)
class Span:
    """A half-open pixel interval ``[start, stop)`` along one axis."""

    start: int
    stop: int

    @property
    def size(self) -> int:
        """Number of pixels."""
        return self.stop - self.start


@dataclass(frozen=True)
class Tile:
    """One tile of a plan.

    Parameters
    ----------
    row, col : int
        Position of the tile in the plan's grid.
    rows, cols : Span
        Pixels the tile reads (always inside the scene).
    core_rows, core_cols : Span
        Pixels the tile owns in the output (inside ``rows``/``cols``).
    """

    row: int
    col: int
    rows: Span
    cols: Span
    core_rows: Span
    core_cols: Span


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering a ``height`` x ``width`` scene, in row-major order.

    ``tile_size`` is the size every chip is padded to before inference (scenes smaller than a
    tile are padded, never skipped).
    """

    height: int
    width: int
    tile_size: int
    overlap: int
    row_spans: tuple[tuple[Span, Span], ...]
    col_spans: tuple[tuple[Span, Span], ...]

    def __len__(self) -> int:
        return len(self.row_spans) * len(self.col_spans)

    def __iter__(self) -> Iterator[Tile]:
        for i, (rows, core_rows) in enumerate(self.row_spans):
            for j, (cols, core_cols) in enumerate(self.col_spans):
                yield Tile(i, j, rows, cols, core_rows, core_cols)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Number of tile rows and tile columns."""
        return (len(self.row_spans), len(self.col_spans))


def axis_spans(length: int, tile_size: int, overlap: int) -> tuple[tuple[Span, Span], ...]:
    """Plan one axis: the read span and the owned core span of each tile.

    Tiles start every ``tile_size - overlap`` pixels; the last one snaps to the end so no tile
    reads beyond the scene. Neighbours split their overlap at its midpoint.

    >>> [(r.start, r.stop, c.start, c.stop) for r, c in axis_spans(10, 6, 2)]
    [(0, 6, 0, 5), (4, 10, 5, 10)]
    """
    if length <= 0:
        raise ConfigError(f"cannot tile an axis of length {length}")
    if length <= tile_size:
        return ((Span(0, length), Span(0, length)),)
    stride = tile_size - overlap
    starts = list(range(0, length - tile_size, stride))
    starts.append(length - tile_size)
    spans = []
    for k, start in enumerate(starts):
        stop = start + tile_size
        core_start = 0 if k == 0 else (start + starts[k - 1] + tile_size) // 2
        core_stop = length if k == len(starts) - 1 else (starts[k + 1] + stop) // 2
        spans.append((Span(start, stop), Span(core_start, core_stop)))
    return tuple(spans)


def plan_tiles(height: int, width: int, tile_size: int, overlap: int) -> TilePlan:
    """Plan the tiles of a scene.

    Parameters
    ----------
    height, width : int
        Scene size in pixels.
    tile_size : int
        Tile side in pixels.
    overlap : int
        Pixels shared by adjacent tiles; ``overlap // 2`` is the seam-free margin.

    Raises
    ------
    ConfigError
        If the sizes are inconsistent (overlap negative or not smaller than half the tile).
    """
    if tile_size < 8:
        raise ConfigError(f"tile size {tile_size} is too small: use at least 8 pixels")
    if overlap < 0 or 2 * overlap >= tile_size:
        raise ConfigError(
            f"overlap {overlap} must be >= 0 and less than half the tile size {tile_size}"
        )
    return TilePlan(
        height=height,
        width=width,
        tile_size=tile_size,
        overlap=overlap,
        row_spans=axis_spans(height, tile_size, overlap),
        col_spans=axis_spans(width, tile_size, overlap),
    )
