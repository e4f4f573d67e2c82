"""Merging the pieces of polygons cut by block seams, a row of blocks at a time.

Pieces are kept in pixel coordinates, whose seam vertices are exact integers, so pieces of one
polygon share exactly equal edges: the pieces of one class sharing a stretch of boundary are
grouped (:func:`shared_edge_pairs`) and each group is unioned into its polygon
(:func:`union_groups`) once no later row of blocks can add to it (:class:`OpenSeams`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely


class OpenSeams:
    """Pieces of polygons cut by block seams, joined a row of blocks at a time.

    Pieces are kept in pixel coordinates (exact integer seam vertices), each in a group of pieces
    known to form one polygon. When a row of blocks is done, its pieces join the groups they share
    an edge with; a group that reaches the row's lower seam stays open for the next row, the
    others are final and unioned, once each.
    """

    def __init__(self, blocks_per_row: int, noded: bool) -> None:
        self.blocks_per_row = blocks_per_row
        self.noded = noded
        self._geoms: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        empty = np.empty(0, dtype=np.int64)
        self._held = (np.empty(0, dtype=object), empty, empty)  # pieces, classes, groups
        self._groups = 0

    def add(self, geoms: np.ndarray, ids: np.ndarray, block_index: int) -> None:
        """Keep the seam pieces of a block of the current row."""
        if len(geoms):
            self._geoms.append(geoms)
            self._ids.append(ids)
            self._cols.append(np.full(len(geoms), block_index % self.blocks_per_row))

    def close_row(self, upper_seam: int, lower_seam: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Join the row's pieces to the open groups; return the polygons now final.

        ``upper_seam`` and ``lower_seam`` are the pixel rows of the seams above and below the
        finished row (``lower_seam`` is ``None`` for the raster's last row, after which
        everything is final).
        """
        held, held_ids, held_groups = self._held
        new = np.concatenate([np.empty(0, dtype=object), *self._geoms])
        new_ids = np.concatenate([np.empty(0, dtype=np.int64), *self._ids]).astype(np.int64)
        new_cols = np.concatenate([np.empty(0, dtype=np.int64), *self._cols]).astype(np.int64)
        self._geoms, self._ids, self._cols = [], [], []
        geoms = np.concatenate([held, new])
        ids = np.concatenate([held_ids, new_ids])
        groups = np.concatenate([held_groups, self._groups + np.arange(len(new))])
        self._groups += len(new)
        if not len(geoms):
            return geoms, ids
        # only held pieces on the upper seam can meet this row's pieces; -1: they span columns
        ymax = shapely.bounds(geoms)[:, 3]
        candidates = np.concatenate(
            [np.flatnonzero(ymax[: len(held)] == upper_seam), len(held) + np.arange(len(new))]
        )
        rows = (candidates >= len(held)).astype(np.int64)
        cols = np.full(len(candidates), -1, dtype=np.int64)
        cols[rows == 1] = new_cols[candidates[rows == 1] - len(held)]
        left, right = shared_edge_pairs(geoms[candidates], ids[candidates], rows, cols)
        roots = _connected_groups(groups, candidates[left], candidates[right])
        if lower_seam is None:
            is_open = np.zeros(len(geoms), dtype=bool)
        else:
            is_open = np.isin(roots, roots[ymax == lower_seam])
        self._held = (geoms[is_open], ids[is_open], roots[is_open])
        done = ~is_open
        return union_groups(geoms[done], ids[done], roots[done], self.noded)


def _connected_groups(groups: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Group label of each piece once the groups of each ``left[i]``, ``right[i]`` pair are one."""
    labels, compact = np.unique(groups, return_inverse=True)
    parent = np.arange(len(labels))

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = int(parent[root])
        while parent[i] != root:  # path compression keeps later finds short
            parent[i], i = root, int(parent[i])
        return root

    for a, b in zip(compact[left].tolist(), compact[right].tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(len(labels))], dtype=np.int64)
    result: np.ndarray = labels[roots[compact]]
    return result


def shared_edge_pairs(
    geoms: np.ndarray, class_ids: np.ndarray, block_rows: np.ndarray, block_cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of seam pieces of one class that share a stretch of boundary.

    Pieces of one class from different blocks that share a stretch of boundary (not just a
    corner, which 4-connectivity does not join) belong to one polygon.

    Parameters
    ----------
    geoms : np.ndarray
        Pieces in pixel coordinates (exact integer seam vertices).
    class_ids : np.ndarray
        Class of each piece.
    block_rows, block_cols : np.ndarray
        Row and column of the block each piece came from, to tell which blocks are side by
        side; a column of -1 marks a piece spanning several columns (joined earlier).

    Returns
    -------
    tuple of np.ndarray
        Indices ``left``, ``right`` of the pairs (``left < right``).
    """
    if not len(geoms):
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    tree = shapely.STRtree(geoms)
    # bounding boxes only: the exact test below runs on far fewer pairs
    left, right = tree.query(geoms)
    candidate = (left < right) & (class_ids[left] == class_ids[right])
    # a piece lies inside its block, so only pieces of blocks sharing a side can share an edge
    row_step = np.abs(block_rows[left] - block_rows[right])
    spanning = (block_cols[left] < 0) | (block_cols[right] < 0)
    col_step = np.where(spanning, 0, np.abs(block_cols[left] - block_cols[right]))
    candidate &= row_step + col_step == 1
    left, right = left[candidate], right[candidate]
    shares_edge = shapely.relate_pattern(geoms[left], geoms[right], "F***1****")
    return left[shares_edge], right[shares_edge]


def union_groups(
    geoms: np.ndarray, class_ids: np.ndarray, groups: np.ndarray, noded: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Union the pieces of each group into its polygon.

    Parameters
    ----------
    geoms : np.ndarray
        Pieces in pixel coordinates.
    class_ids : np.ndarray
        Class of each piece (one per group).
    groups : np.ndarray
        Group label of each piece.
    noded : bool
        The pieces share every vertex along their common edges (as after
        :func:`node_pixel_coverage`), so the faster coverage union applies.

    Returns
    -------
    tuple of np.ndarray
        Polygons and their class ids.
    """
    order = np.argsort(groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(groups[order])) + 1
    out_geoms: list[Any] = []
    out_ids: list[int] = []
    for group in np.split(order, boundaries) if len(order) else []:
        if len(group) == 1:
            parts = [geoms[group[0]]]
        else:
            parts = list(shapely.get_parts(_union_pieces(geoms[group], noded)))
        out_geoms.extend(parts)
        out_ids.extend([int(class_ids[group[0]])] * len(parts))
    merged = np.empty(len(out_geoms), dtype=object)
    merged[:] = out_geoms
    return merged, np.array(out_ids, dtype=np.int64)


def _union_pieces(pieces: np.ndarray, noded: bool) -> Any:
    """Union of the pieces of one polygon; by edge matching when they are a noded coverage."""
    if noded:
        try:
            union = shapely.coverage_union_all(pieces)
        except shapely.errors.GEOSException:
            union = None
        # the overlay union is the reference: fall back to it should matching ever fail
        if union is not None and shapely.is_valid(union) and not shapely.is_empty(union):
            return union
    return shapely.union_all(pieces)
