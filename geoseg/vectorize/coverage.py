"""Noding a pixel coverage: neighbouring polygons get identical vertices along shared edges.

The coverage algorithms (:func:`shapely.coverage_simplify`, :func:`shapely.coverage_union_all`)
need shared edges vertex for vertex; GDAL's polygonizer leaves out vertices at T-junctions.
"""

from __future__ import annotations

import numpy as np
import shapely

#: Multiplier packing a pixel coordinate pair into one sortable int64 key (coordinates < 2**31).
_KEY = np.int64(1) << np.int64(31)


def node_pixel_coverage(
    geoms: np.ndarray, seams: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))
) -> np.ndarray:
    """Give neighbouring pixel polygons identical vertices along their shared edges.

    GDAL's polygonizer puts a vertex only where an outline turns, so where three regions meet
    (a T-junction) the polygon whose side runs straight through lacks the junction vertex. The
    coverage algorithms need shared edges vertex for vertex, so every vertex of the coverage that
    lies inside another polygon's edge is inserted into that edge. Edges lying on an internal
    block seam get a vertex at every pixel corner instead, because the neighbouring block's
    vertices there are not known yet and must match after the seams are merged.

    All edges of polygonized pixels are axis-aligned with integer vertices, so the vertices
    inside an edge are a contiguous range of the vertices sorted by row (horizontal edges) or by
    column (vertical edges): the insertion is a few vectorized searches, not a geometric noding.

    Parameters
    ----------
    geoms : np.ndarray
        Polygons in pixel coordinates from :func:`rasterio.features.shapes`.
    seams : tuple of np.ndarray
        Pixel columns and rows of internal block seams.

    Returns
    -------
    np.ndarray
        The same polygons (geometrically equal), with the inserted vertices.
    """
    if not len(geoms):
        return geoms
    rings, owner = shapely.get_rings(geoms, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    xy = np.rint(coords).astype(np.int64)
    n = len(xy)
    is_start = np.zeros(n, dtype=bool)  # a vertex that starts an edge (not a ring's closing one)
    is_start[:-1] = ring_of[1:] == ring_of[:-1]
    starts = np.flatnonzero(is_start)
    p, q = xy[starts], xy[starts + 1]
    horizontal = p[:, 1] == q[:, 1]
    by_row = _sorted_unique(xy[:, 1] * _KEY + xy[:, 0])
    by_col = _sorted_unique(xy[:, 0] * _KEY + xy[:, 1])
    # each edge as a fixed line coordinate and an open interval (a, b) along it
    fixed = np.where(horizontal, p[:, 1], p[:, 0])
    a = np.where(horizontal, np.minimum(p[:, 0], q[:, 0]), np.minimum(p[:, 1], q[:, 1]))
    b = np.where(horizontal, np.maximum(p[:, 0], q[:, 0]), np.maximum(p[:, 1], q[:, 1]))
    lo = np.where(
        horizontal,
        np.searchsorted(by_row, fixed * _KEY + a, "right"),
        np.searchsorted(by_col, fixed * _KEY + a, "right"),
    )
    hi = np.where(
        horizontal,
        np.searchsorted(by_row, fixed * _KEY + b, "left"),
        np.searchsorted(by_col, fixed * _KEY + b, "left"),
    )
    seam_columns, seam_rows = seams
    on_seam = np.where(horizontal, np.isin(p[:, 1], seam_rows), np.isin(p[:, 0], seam_columns))
    count = np.where(on_seam, b - a - 1, hi - lo)
    per_vertex = np.ones(n, dtype=np.int64)
    per_vertex[starts] += count
    offsets = np.cumsum(per_vertex) - per_vertex
    out = np.empty((int(per_vertex.sum()), 2), dtype=np.int64)
    out[offsets] = xy
    total = int(count.sum())
    if total:
        edge = np.repeat(np.arange(len(starts)), count)
        within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        forward = np.where(horizontal, q[:, 0] > p[:, 0], q[:, 1] > p[:, 1])[edge]
        rank = np.where(forward, within, count[edge] - 1 - within)
        sorted_keys = np.where(
            horizontal[edge],
            by_row[np.minimum(lo[edge] + rank, len(by_row) - 1)],
            by_col[np.minimum(lo[edge] + rank, len(by_col) - 1)],
        )
        along = np.where(on_seam[edge], a[edge] + 1 + rank, sorted_keys - fixed[edge] * _KEY)
        position = offsets[starts][edge] + 1 + within
        out[position, 0] = np.where(horizontal[edge], along, fixed[edge])
        out[position, 1] = np.where(horizontal[edge], fixed[edge], along)
    new_rings = shapely.linearrings(out.astype(np.float64), indices=np.repeat(ring_of, per_vertex))
    noded: np.ndarray = shapely.polygons(new_rings, indices=owner)
    return noded


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 keys by a plain sort (faster here: ``np.unique`` hashes first)."""
    ordered = np.sort(keys)
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    result: np.ndarray = ordered[keep]
    return result
