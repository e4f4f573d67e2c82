"""Pixel-space tile planning: which window each tile reads and which core it owns.

Overlap ownership is decided once, here. Adjacent tiles split their overlap at its midpoint, so the
cores partition the scene exactly and every core pixel lies at least ``overlap // 2`` pixels from
any tile edge that is not a scene edge. A model whose receptive field radius fits in that margin
therefore predicts each pixel exactly as it would on the whole image: no seams.
"""

from __future__ import annotations

import functools
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

    ``tile_size`` is the largest window a tile reads. ``multiple`` is the size multiple of the
    network's input and ``origin`` the ``(row, col)`` of the scene's first pixel on the absolute
    pixel grid: every chip is padded so that its first pixel lies on that grid's multiples (a
    network that downsamples then sees the same ground the same way in every file cut from
    one scene), to :attr:`chip_shape`.
    """

    height: int
    width: int
    tile_size: int
    overlap: int
    row_spans: tuple[tuple[Span, Span], ...]
    col_spans: tuple[tuple[Span, Span], ...]
    multiple: int = 1
    origin: tuple[int, int] = (0, 0)

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

    def before(self, tile: Tile) -> tuple[int, int]:
        """Padding rows and columns before the tile's first pixel in its chip."""
        return (
            (self.origin[0] + tile.rows.start) % self.multiple,
            (self.origin[1] + tile.cols.start) % self.multiple,
        )

    @functools.cached_property
    def chip_shape(self) -> tuple[int, int]:
        """The shape every chip is padded to: the largest tile with its padding before it.

        A multiple of :attr:`multiple`. Where tiles start on the absolute grid (see
        :func:`axis_spans`) that is ``tile_size`` itself: the network sees no more pixels than
        the tiles hold.
        """

        def axis(spans: tuple[tuple[Span, Span], ...], origin: int) -> int:
            need = max((origin + read.start) % self.multiple + read.size for read, _ in spans)
            return -(-need // self.multiple) * self.multiple

        return axis(self.row_spans, self.origin[0]), axis(self.col_spans, self.origin[1])


def axis_spans(
    length: int, tile_size: int, overlap: int, origin: int = 0, multiple: int = 1
) -> tuple[tuple[Span, Span], ...]:
    """Plan one axis: the read span and the owned core span of each tile.

    Tiles start every ``tile_size - overlap`` pixels; the last one ends at the axis's end, so no
    tile reads beyond it. Neighbours split their overlap at its midpoint.

    With ``multiple`` > 1 (a network's size multiple, ``origin`` the axis's first pixel on the
    absolute grid), tiles start where ``origin + start`` is a multiple of it, so a chip of
    ``tile_size`` pixels needs no padding to lie on that grid: the first tile reads what lies
    inside the axis of a window starting up to ``multiple - 1`` pixels before it, the stride
    is rounded down to the multiple (the overlap grows by less than one multiple) and the last
    tile starts at the first multiple from which it reaches the end. Where ``tile_size`` is
    not a multiple, or where that would make the network see more pixels (a tile small beside
    the multiple), tiles start as with ``multiple`` 1 and chips are padded.

    >>> [(r.start, r.stop, c.start, c.stop) for r, c in axis_spans(10, 6, 2)]
    [(0, 6, 0, 5), (4, 10, 5, 10)]
    >>> [(r.start, r.stop) for r, _ in axis_spans(1000, 512, 64, origin=45, multiple=32)]
    [(0, 499), (435, 947), (499, 1000)]
    """
    if length <= 0:
        raise ConfigError(f"cannot tile an axis of length {length}")
    if length <= tile_size:
        return ((Span(0, length), Span(0, length)),)
    reads = _reads(length, tile_size, tile_size - overlap, origin, 1)
    if multiple > 1 and tile_size % multiple == 0 and tile_size - overlap >= multiple:
        stride = (tile_size - overlap) // multiple * multiple
        aligned = _reads(length, tile_size, stride, origin, multiple)
        # chips of unaligned tiles carry up to a multiple of padding: keep the fewer pixels
        if len(aligned) * tile_size <= len(reads) * (tile_size + multiple):
            reads = aligned
    spans = []
    for k, read in enumerate(reads):
        core_start = 0 if k == 0 else (read.start + reads[k - 1].stop) // 2
        core_stop = length if k == len(reads) - 1 else (reads[k + 1].start + read.stop) // 2
        spans.append((read, Span(core_start, core_stop)))
    return tuple(spans)


def _reads(length: int, tile_size: int, stride: int, origin: int, step: int) -> list[Span]:
    """Windows every ``stride`` pixels starting on multiples of ``step`` of the absolute grid."""
    lead = origin % step  # pixels of the first window that lie before the axis
    last = length - tile_size
    last += -(origin + last) % step  # on the grid, so up to a step reaches past the end
    starts = [-lead]
    while starts[-1] + stride < last:
        starts.append(starts[-1] + stride)
    return [Span(max(start, 0), start + tile_size) for start in starts] + [Span(last, length)]


def plan_tiles(
    height: int,
    width: int,
    tile_size: int,
    overlap: int,
    origin: tuple[int, int] = (0, 0),
    multiple: int = 1,
) -> TilePlan:
    """Plan the tiles of a scene.

    Parameters
    ----------
    height, width : int
        Scene size in pixels.
    tile_size : int
        Tile side in pixels.
    overlap : int
        Pixels shared by adjacent tiles; ``overlap // 2`` is the seam-free margin.
    origin : (int, int)
        ``(row, col)`` of the scene's first pixel on the absolute pixel grid.
    multiple : int
        The network's size multiple: chips lie on the absolute grid's multiples of it.

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
        row_spans=axis_spans(height, tile_size, overlap, origin[0], multiple),
        col_spans=axis_spans(width, tile_size, overlap, origin[1], multiple),
        multiple=multiple,
        origin=origin,
    )
