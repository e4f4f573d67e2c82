"""Vectorizing one block: sieve with a halo, polygonize, simplify as a coverage, measure.

A block is a :class:`BlockJob` (its pixels with a halo around them, see :func:`halo_pixels`) and
becomes a :class:`BlockResult`: its polygons that touch no internal seam, final in CRS coordinates
with their ground areas, and its seam pieces in pixel coordinates, left for
:mod:`geoseg.vectorize.seams` to merge. Blocks are independent, so :func:`vectorize_block` runs in
worker processes too.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes, sieve
from rasterio.windows import Window

from geoseg.core import NODATA, Grid
from geoseg.errors import VectorizeError
from geoseg.vectorize.coverage import node_pixel_coverage
from geoseg.vectorize.geodesy import ground_area_m2, to_crs_coordinates

log = logging.getLogger(__name__)

#: Largest halo (pixels) read around a block for sieving; see :func:`halo_pixels`.
MAX_HALO = 256


@dataclass(frozen=True)
class BlockJob:
    """One block to vectorize: its haloed pixels and where they sit in the raster's ``grid``."""

    index: int
    data: np.ndarray
    window: Window
    core: Window
    grid: Grid
    threshold: int
    tolerance_px: float


@dataclass(frozen=True)
class BlockResult:
    """A vectorized block: final polygons (CRS coordinates, with areas) and seam pieces (pixels)."""

    index: int
    valid_pixels: int
    present: np.ndarray
    geoms: np.ndarray
    ids: np.ndarray
    areas: np.ndarray
    seam_geoms: np.ndarray
    seam_ids: np.ndarray
    timings: dict[str, float]


def vectorize_block(job: BlockJob) -> BlockResult:
    """Sieve, polygonize and simplify one block; measure the polygons that are already final."""
    timings: dict[str, float] = defaultdict(float)
    labels, n_valid = _sieved_core(job.data, job.window, job.core, job.threshold, timings)
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=NODATA + 1)[:NODATA])
    empty = np.empty(0, dtype=object)
    no_ids = np.empty(0, dtype=np.int64)
    if n_valid == 0:
        return BlockResult(
            job.index, 0, present, empty, no_ids, np.empty(0), empty, no_ids, dict(timings)
        )
    grid = job.grid
    geoms, ids = _polygonize_block(
        labels, job.core, grid.width, grid.height, job.tolerance_px, timings
    )
    seam = _touches_internal_seam(geoms, job.core, grid.width, grid.height)
    keep = ~seam
    crs_geoms = to_crs_coordinates(geoms[keep], grid.transform) if keep.any() else empty
    t0 = time.perf_counter()
    areas = ground_area_m2(crs_geoms, grid.crs) if keep.any() else np.empty(0)
    timings["area"] += time.perf_counter() - t0
    return BlockResult(
        job.index,
        n_valid,
        present,
        crs_geoms,
        ids[keep],
        areas,
        geoms[seam],
        ids[seam],
        dict(timings),
    )


def sieve_threshold(min_area_m2: float, pixel_area: float) -> int:
    """Smallest region size in pixels that survives sieving (1 means no sieving).

    >>> sieve_threshold(2500.0, 100.0)
    25
    >>> sieve_threshold(2500.0, 50_000_000.0)
    1
    """
    if min_area_m2 <= 0 or pixel_area <= 0:
        return 1
    return max(1, math.ceil(min_area_m2 / pixel_area - 1e-9))


def halo_pixels(threshold: int) -> int:
    """Halo (pixels) read around a block so specks on its edge are sieved as a whole.

    A region of fewer than ``threshold`` pixels lies within ``threshold`` pixels of any of its
    pixels, so a halo of ``threshold`` shows it whole; a larger region crossing the halo's edge
    shows at least ``threshold`` pixels and is left alone. The halo is capped at
    :data:`MAX_HALO` to bound the work; only one-pixel-thin regions longer than the cap can then
    be judged on their visible part.
    """
    return 0 if threshold <= 1 else min(threshold + 1, MAX_HALO)


def haloed_window(core: Window, width: int, height: int, halo: int) -> Window:
    """``core`` grown by ``halo`` pixels on every side, clipped to the raster."""
    col0 = max(0, int(core.col_off) - halo)
    row0 = max(0, int(core.row_off) - halo)
    col1 = min(width, int(core.col_off + core.width) + halo)
    row1 = min(height, int(core.row_off + core.height) + halo)
    return Window(col0, row0, col1 - col0, row1 - row0)


def _sieved_core(
    data: np.ndarray,
    window: Window,
    core: Window,
    threshold: int,
    timings: dict[str, float],
) -> tuple[np.ndarray, int]:
    """Sieve the haloed ``data`` read at ``window``; return the core and its valid count."""
    r = int(core.row_off) - int(window.row_off)
    c = int(core.col_off) - int(window.col_off)
    core_slice = (slice(r, r + int(core.height)), slice(c, c + int(core.width)))
    if not (data[core_slice] != NODATA).any():
        return data[core_slice], 0
    # GDAL refuses a size of at least the window's pixel count; the cap changes nothing, as a
    # region filling all but one pixel of the window has no larger neighbour to merge into
    threshold = min(threshold, data.size - 1)
    if threshold > 1:
        t0 = time.perf_counter()
        valid = data != NODATA
        # masked (nodata) pixels are neither merged nor merged into: nodata stays exactly nodata
        data = sieve(data, threshold, mask=valid, connectivity=4)
        timings["sieve"] += time.perf_counter() - t0
    labels = np.ascontiguousarray(data[core_slice])
    return labels, int((labels != NODATA).sum())


def check_allowed(present: np.ndarray, allowed: frozenset[int]) -> None:
    """Raise :class:`VectorizeError` if a value ``present`` in a block is not ``allowed``."""
    unknown = sorted(set(present.tolist()) - allowed)
    if unknown:
        raise VectorizeError(
            f"class raster holds values {unknown} that the classes do not name "
            f"(classes have ids {sorted(allowed)}): pass a matching classes file"
        )


def _polygonize_block(
    labels: np.ndarray,
    core: Window,
    width: int,
    height: int,
    tolerance_px: float,
    timings: dict[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Polygons of one block in global pixel coordinates, simplified as one coverage."""
    t0 = time.perf_counter()
    offset = Affine.translation(int(core.col_off), int(core.row_off))
    pairs = list(shapes(labels, mask=labels != NODATA, connectivity=4, transform=offset))
    geoms = polygons_from_geojson([g["coordinates"] for g, _ in pairs])
    ids = np.array([int(v) for _, v in pairs], dtype=np.int64)
    timings["polygonize"] += time.perf_counter() - t0
    if tolerance_px > 0 and len(geoms):
        t0 = time.perf_counter()
        geoms = node_pixel_coverage(geoms, _internal_seams(core, width, height))
        geoms = shapely.coverage_simplify(geoms, tolerance_px, simplify_boundary=False)
        geoms, ids = make_valid_polygons(geoms, ids)
        timings["simplify"] += time.perf_counter() - t0
    return geoms, ids


def polygons_from_geojson(rings_per_polygon: Sequence[Sequence[Any]]) -> np.ndarray:
    """Shapely polygons from GeoJSON polygon coordinates, built in one vectorized call.

    ``shapely.geometry.shape`` builds every vertex through Python (about half of the
    polygonize time on a dense map); here each ring becomes one numpy array and all polygons are
    created at once from ragged offsets.
    """
    if not rings_per_polygon:
        return np.empty(0, dtype=object)
    rings = [
        np.asarray(ring, dtype=np.float64) for polygon in rings_per_polygon for ring in polygon
    ]
    ring_offsets = np.zeros(len(rings) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rings], out=ring_offsets[1:])
    polygon_offsets = np.zeros(len(rings_per_polygon) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in rings_per_polygon], out=polygon_offsets[1:])
    geoms: np.ndarray = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        np.concatenate(rings),
        (ring_offsets, polygon_offsets),
    )
    return geoms


def make_valid_polygons(geoms: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repair invalid geometries and explode to non-empty single polygons, keeping their ids."""
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        log.debug("repairing %d invalid polygons", int(invalid.sum()))
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid], method="structure")
    parts, index = shapely.get_parts(geoms, return_index=True)
    polygonal = shapely.get_type_id(parts) == shapely.GeometryType.POLYGON
    polygonal &= ~shapely.is_empty(parts)
    return parts[polygonal], ids[index[polygonal]]


def _internal_seams(core: Window, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel columns and rows of the edges of ``core`` shared with another block."""
    c0, r0 = int(core.col_off), int(core.row_off)
    c1, r1 = c0 + int(core.width), r0 + int(core.height)
    columns = [c for c in (c0, c1) if 0 < c < width]
    rows = [r for r in (r0, r1) if 0 < r < height]
    return np.array(columns, dtype=np.int64), np.array(rows, dtype=np.int64)


def _touches_internal_seam(geoms: np.ndarray, core: Window, width: int, height: int) -> np.ndarray:
    """Which polygons reach an edge of ``core`` that is not the raster's own edge."""
    if not len(geoms):
        return np.zeros(0, dtype=bool)
    xmin, ymin, xmax, ymax = shapely.bounds(geoms).T
    c0, r0 = int(core.col_off), int(core.row_off)
    c1, r1 = c0 + int(core.width), r0 + int(core.height)
    seam: np.ndarray = (
        ((xmin == c0) & (c0 > 0))
        | ((xmax == c1) & (c1 < width))
        | ((ymin == r0) & (r0 > 0))
        | ((ymax == r1) & (r1 < height))
    )
    return seam
