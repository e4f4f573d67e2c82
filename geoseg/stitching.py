"""Assembling tile predictions into the scene's class raster, without seams.

Each tile contributes only the core it owns (decided by :mod:`geoseg.tiling`), so no pixel is
written twice and no blending is needed; cores of one tile row are joined into one full-width
patch, which streams to the writer as soon as the row is done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoseg.tiling import Span, Tile, TilePlan


@dataclass(frozen=True)
class Patch:
    """Class ids for the pixels ``rows`` x ``cols`` of the output grid."""

    rows: Span
    cols: Span
    data: np.ndarray


def core_patch(tile: Tile, chip_classes: np.ndarray) -> Patch:
    """Cut the core a tile owns out of its (possibly padded) chip (``(..., h, w)``)."""
    r0 = tile.core_rows.start - tile.rows.start
    c0 = tile.core_cols.start - tile.cols.start
    data = chip_classes[..., r0 : r0 + tile.core_rows.size, c0 : c0 + tile.core_cols.size]
    return Patch(tile.core_rows, tile.core_cols, data)


def join_row(patches: list[Patch], width: int) -> Patch:
    """Join the core patches of one tile row into a full-width patch.

    Raises
    ------
    ValueError
        If the patches do not tile ``[0, width)`` exactly, in order (a planning bug).
    """
    expected = 0
    for patch in patches:
        if patch.cols.start != expected or patch.rows != patches[0].rows:
            raise ValueError("tile cores do not partition the row")
        expected = patch.cols.stop
    if expected != width:
        raise ValueError(f"tile cores cover {expected} of {width} columns")
    data = np.concatenate([p.data for p in patches], axis=1)
    return Patch(patches[0].rows, Span(0, width), data)


def assemble(plan: TilePlan, chip_classes: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """Assemble a whole map in memory (small scenes, tests): ``(..., height, width)``.

    The chips' leading dimensions (none for a class map, classes for probabilities) and data
    type carry over.
    """
    first = next(iter(chip_classes.values()))
    out = np.empty((*first.shape[:-2], plan.height, plan.width), dtype=first.dtype)
    for tile in plan:
        patch = core_patch(tile, chip_classes[(tile.row, tile.col)])
        out[..., patch.rows.start : patch.rows.stop, patch.cols.start : patch.cols.stop] = (
            patch.data
        )
    return out
