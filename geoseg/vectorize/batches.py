"""Vectorizing a raster block by block, a row of blocks at a time, in batches of final polygons.

:func:`polygon_batches` reads the blocks, has them vectorized (here or in worker processes),
merges their seam pieces when a row of blocks is done and yields the polygons that became final
as one :class:`Polygons` batch, so memory does not grow with the raster.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geoseg.core import NODATA
from geoseg.errors import VectorizeError
from geoseg.io.class_raster import BlockReader
from geoseg.vectorize.blocks import (
    BlockJob,
    BlockResult,
    check_allowed,
    halo_pixels,
    haloed_window,
    sieve_threshold,
    vectorize_block,
)
from geoseg.vectorize.geodesy import ground_area_m2, pixel_area_m2, pyproj_crs, to_crs_coordinates
from geoseg.vectorize.seams import OpenSeams
from geoseg.workers import check_not_importing_main, effective_workers, lowest_priority

ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class Polygons:
    """Vectorized classes in a CRS, with their ground areas.

    Parameters
    ----------
    geometries : np.ndarray
        Shapely polygons (object array).
    class_ids : np.ndarray
        Class id of each polygon (int).
    area_m2 : np.ndarray
        Ground area of each polygon in square metres (float).
    crs : rasterio.crs.CRS
        CRS of ``geometries``.
    valid_pixels : int
        Valid (non-nodata) pixels after sieving.
    sieve_pixels : int
        Sieve threshold used at the raster's centre, in pixels (regions smaller are merged).
    min_area_m2, simplify_m : float
        The sieve and simplification settings that made them.
    block_size : int
        Processing block side, pixels.
    timings_s : Mapping[str, float]
        Seconds spent per step.
    """

    geometries: np.ndarray
    class_ids: np.ndarray
    area_m2: np.ndarray
    crs: CRS
    valid_pixels: int
    sieve_pixels: int
    min_area_m2: float
    simplify_m: float
    block_size: int
    timings_s: Mapping[str, float] = field(default_factory=dict)


def polygon_batches(
    read: BlockReader,
    width: int,
    height: int,
    transform: Affine,
    crs: CRS,
    *,
    min_area_m2: float,
    simplify_m: float,
    block_size: int,
    allowed_ids: frozenset[int] | None = None,
    progress: ProgressCallback | None = None,
    workers: int = 1,
    background: bool = False,
) -> Iterator[Polygons]:
    """Sieve, polygonize, simplify and measure a raster read block by block, a row at a time.

    Yields, for each row of blocks, the polygons that became final with it: those of its blocks
    that touch no seam, and the pieces cut by seams once no later block can add to them (they
    are merged with their pieces from the rows above as soon as the row is done). Memory
    therefore holds one row of blocks and the polygons open across its lower seam, whatever the
    raster's size, and a writer can store each batch as it comes.

    Blocks are independent until their seam pieces are merged, so with ``workers`` > 1 they are
    processed in that many worker processes (the GEOS and GDAL work holds the GIL, so threads
    would not help). This process only reads blocks, hands them out in order and merges the seam
    pieces; the result is identical to the serial one.

    Parameters
    ----------
    read : callable
        Returns the normalized block (uint8, 255 = nodata) for a window.
    width, height : int
        Raster size, pixels.
    transform : affine.Affine
        Pixel-to-CRS transform.
    crs : CRS
        The raster's CRS.
    min_area_m2, simplify_m, block_size
        As for :func:`vectorize_raster`.
    allowed_ids : frozenset of int or None
        If given, a class value outside it raises :class:`VectorizeError` at the first block
        holding it.
    progress : callable or None
        Called with the fraction of blocks done.
    workers : int
        Worker processes; 1 works in this process; 0 (auto) uses
        :func:`geoseg.workers.cpu_workers` on rasters of 16 megapixels or more.
    background : bool
        Run the worker processes at the lowest CPU priority, so that vectorizing beside the
        model only takes the cycles the model leaves idle.

    Yields
    ------
    Polygons
        One batch per row of blocks, in ``crs``; ``valid_pixels`` and ``timings_s`` count that
        row's share.
    """
    timings: dict[str, float] = defaultdict(float)
    centre_area = pixel_area_m2(crs, transform, width / 2, height / 2)
    tolerance_px = simplify_m / math.sqrt(centre_area) if simplify_m > 0 else 0.0
    geographic = pyproj_crs(crs).is_geographic
    centre_sieve = sieve_threshold(min_area_m2, centre_area)
    blocks_per_row = math.ceil(width / block_size)
    blocks = [
        Window(col, row, min(block_size, width - col), min(block_size, height - row))
        for row in range(0, height, block_size)
        for col in range(0, width, block_size)
    ]

    def jobs() -> Iterator[BlockJob]:
        for index, core in enumerate(blocks):
            # ground pixel area varies with latitude in geographic CRSs: measure it per block
            threshold = (
                sieve_threshold(
                    min_area_m2,
                    pixel_area_m2(
                        crs,
                        transform,
                        core.col_off + core.width / 2,
                        core.row_off + core.height / 2,
                    ),
                )
                if geographic
                else centre_sieve
            )
            t0 = time.perf_counter()
            window = haloed_window(core, width, height, halo_pixels(threshold))
            data = read(window)
            timings["read"] += time.perf_counter() - t0
            yield BlockJob(
                index, data, window, core, width, height, threshold, tolerance_px, transform, crs
            )

    def batch(
        geoms: list[np.ndarray], ids: list[np.ndarray], areas: list[np.ndarray], valid: int
    ) -> Polygons:
        return Polygons(
            geometries=np.concatenate(geoms) if geoms else np.empty(0, dtype=object),
            class_ids=np.concatenate(ids).astype(np.int64) if ids else np.empty(0, np.int64),
            area_m2=np.concatenate(areas) if areas else np.empty(0, dtype=np.float64),
            crs=crs,
            valid_pixels=valid,
            sieve_pixels=centre_sieve,
            min_area_m2=float(min_area_m2),
            simplify_m=float(simplify_m),
            block_size=block_size,
            timings_s=dict(timings),
        )

    seams = OpenSeams(blocks_per_row, noded=tolerance_px > 0)
    final_geoms: list[np.ndarray] = []
    final_ids: list[np.ndarray] = []
    final_areas: list[np.ndarray] = []
    valid_pixels = 0
    workers = effective_workers(workers, width, height, block_size)
    for done, result in enumerate(_run_jobs(jobs(), workers, background), start=1):
        if progress is not None:
            progress(done / len(blocks))
        for step, seconds in result.timings.items():
            timings[step] += seconds
        if result.valid_pixels:
            valid_pixels += result.valid_pixels
            if allowed_ids is not None:
                check_allowed(result.present, allowed_ids)
            seams.add(result.seam_geoms, result.seam_ids, result.index)
            final_geoms.append(result.geoms)
            final_ids.append(result.ids)
            final_areas.append(result.areas)
        if (result.index + 1) % blocks_per_row and done < len(blocks):
            continue  # the row of blocks is not complete yet
        # the row is done: seam pieces that reach no later row are final
        row_start = result.index // blocks_per_row * block_size
        row_end = min(height, row_start + block_size)
        t0 = time.perf_counter()
        closed, closed_ids = seams.close_row(row_start, row_end if row_end < height else None)
        timings["merge"] += time.perf_counter() - t0
        if len(closed):
            crs_geoms = to_crs_coordinates(closed, transform)
            t0 = time.perf_counter()
            final_areas.append(ground_area_m2(crs_geoms, crs))
            timings["area"] += time.perf_counter() - t0
            final_geoms.append(crs_geoms)
            final_ids.append(closed_ids)
        yield batch(final_geoms, final_ids, final_areas, valid_pixels)
        final_geoms, final_ids, final_areas = [], [], []
        valid_pixels = 0
        timings.clear()


def join_batches(batches: Iterable[Polygons]) -> Polygons:
    """One :class:`Polygons` from batches of one raster (valid pixels and timings summed)."""
    parts = list(batches)
    if not parts:
        raise ValueError("no batches to join")
    timings: dict[str, float] = defaultdict(float)
    for part in parts:
        for step, seconds in part.timings_s.items():
            timings[step] += seconds
    return replace(
        parts[0],
        geometries=np.concatenate([p.geometries for p in parts]),
        class_ids=np.concatenate([p.class_ids for p in parts]),
        area_m2=np.concatenate([p.area_m2 for p in parts]),
        valid_pixels=sum(p.valid_pixels for p in parts),
        timings_s=dict(timings),
    )


def array_reader(labels: np.ndarray, nodata: int | None = NODATA) -> BlockReader:
    """A block reader over an in-memory 2-D label array (normalized: uint8, 255 = nodata)."""
    from geoseg.io.class_raster import normalize_block

    normalized = normalize_block(labels, nodata)

    def read(window: Window) -> np.ndarray:
        rows, cols = window.toslices()
        block: np.ndarray = normalized[rows, cols]
        return block

    return read


def _run_jobs(
    jobs: Iterator[BlockJob], workers: int, background: bool = False
) -> Iterator[BlockResult]:
    """Results of ``jobs`` in order, computed here or in ``workers`` spawned processes.

    At most two blocks per worker are in flight, so memory stays bounded whatever the raster's
    size. Spawned (not forked) workers: the caller may run threads (torch, GDAL) that a fork
    would copy in an undefined state.
    """
    if workers <= 1:
        yield from map(vectorize_block, jobs)
        return
    check_not_importing_main()
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=lowest_priority if background else None,
        ) as pool:
            pending: deque[Future[BlockResult]] = deque()
            for job in jobs:
                pending.append(pool.submit(vectorize_block, job))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    except BrokenProcessPool:
        raise VectorizeError(
            "a vectorize worker process died (out of memory, or a script without an "
            "`if __name__ == '__main__':` guard); run again with --jobs 1 (workers=1)"
        ) from None
