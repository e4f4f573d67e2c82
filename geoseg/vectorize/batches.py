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
from rasterio.crs import CRS
from rasterio.windows import Window

from geoseg.config import VectorizeOptions
from geoseg.core import NODATA, Grid
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
    grid: Grid,
    options: VectorizeOptions,
    *,
    allowed_ids: frozenset[int] | None = None,
    progress: ProgressCallback | None = None,
    background: bool = False,
) -> Iterator[Polygons]:
    """Sieve, polygonize, simplify and measure a raster read block by block, a row at a time.

    Yields, for each row of blocks, the polygons that became final with it: those of its blocks
    that touch no seam, and the pieces cut by seams once no later block can add to them (they
    are merged with their pieces from the rows above as soon as the row is done). Memory
    therefore holds one row of blocks and the polygons open across its lower seam, whatever the
    raster's size, and a writer can store each batch as it comes.

    Blocks are independent until their seam pieces are merged, so with ``options.workers`` > 1
    they are processed in that many worker processes (the GEOS and GDAL work holds the GIL, so
    threads would not help). This process only reads blocks, hands them out in order and merges
    the seam pieces; the result is identical to the serial one.

    Parameters
    ----------
    read : callable
        Returns the normalized block (uint8, 255 = nodata) for a window.
    grid : Grid
        The raster's grid.
    options : VectorizeOptions
        ``min_area_m2``, ``simplify_m`` and ``block_size`` as for :func:`vectorize_raster`;
        ``workers``: worker processes, 1 works in this process, 0 (auto) uses
        :func:`geoseg.workers.cpu_workers` on rasters of 16 megapixels or more. ``dst_crs`` is
        the writer's (:func:`write_polygons`), not used here.
    allowed_ids : frozenset of int or None
        If given, a class value outside it raises :class:`VectorizeError` at the first block
        holding it.
    progress : callable or None
        Called with the fraction of blocks done.
    background : bool
        Run the worker processes at the lowest CPU priority, so that vectorizing beside the
        model only takes the cycles the model leaves idle.

    Yields
    ------
    Polygons
        One batch per row of blocks, in the grid's CRS; ``valid_pixels`` and ``timings_s`` count
        that row's share.
    """
    blocked = _BlockGrid.of(grid, options)
    blocks = blocked.windows()
    # one dict shared with the job generator, which adds the read time of each block it reads
    timings: dict[str, float] = defaultdict(float)
    seams = OpenSeams(blocked.blocks_per_row, noded=blocked.tolerance_px > 0)
    row = _FinishedRow()
    jobs = _block_jobs(read, blocked, blocks, timings)
    workers = effective_workers(options.workers, grid.width, grid.height, options.block_size)
    for done, result in enumerate(_run_jobs(jobs, workers, background), start=1):
        if progress is not None:
            progress(done / len(blocks))
        for step, seconds in result.timings.items():
            timings[step] += seconds
        _collect_block(result, row, seams, allowed_ids)
        if (result.index + 1) % blocked.blocks_per_row and done < len(blocks):
            continue  # the row of blocks is not complete yet
        _close_row_seams(seams, blocked, result.index, row, timings)
        yield row.batch(blocked, timings)
        timings.clear()


@dataclass(frozen=True)
class _BlockGrid:
    """A raster's grid cut into blocks, and the settings every block of it shares.

    Parameters
    ----------
    raster : Grid
        The raster's grid.
    block_size : int
        Processing block side, pixels.
    min_area_m2, simplify_m : float
        The sieve and simplification settings.
    centre_sieve : int
        Sieve threshold at the raster's centre, pixels.
    tolerance_px : float
        Simplification tolerance, pixels (at the raster's centre).
    geographic : bool
        Whether the raster's CRS is geographic (the pixels' ground area then varies with
        latitude).
    """

    raster: Grid
    block_size: int
    min_area_m2: float
    simplify_m: float
    centre_sieve: int
    tolerance_px: float
    geographic: bool

    @classmethod
    def of(cls, raster: Grid, options: VectorizeOptions) -> _BlockGrid:
        """The blocks of a raster, with sieve and tolerance measured at its centre."""
        width, height = raster.width, raster.height
        min_area_m2, simplify_m = options.min_area_m2, options.simplify_m
        centre_area = pixel_area_m2(raster.crs, raster.transform, width / 2, height / 2)
        return cls(
            raster=raster,
            block_size=options.block_size,
            min_area_m2=min_area_m2,
            simplify_m=simplify_m,
            tolerance_px=simplify_m / math.sqrt(centre_area) if simplify_m > 0 else 0.0,
            geographic=pyproj_crs(raster.crs).is_geographic,
            centre_sieve=sieve_threshold(min_area_m2, centre_area),
        )

    @property
    def blocks_per_row(self) -> int:
        """Blocks in one row of blocks."""
        return math.ceil(self.raster.width / self.block_size)

    def windows(self) -> list[Window]:
        """The blocks' windows, row by row, left to right."""
        size, width, height = self.block_size, self.raster.width, self.raster.height
        return [
            Window(col, row, min(size, width - col), min(size, height - row))
            for row in range(0, height, size)
            for col in range(0, width, size)
        ]

    def block_sieve_threshold(self, core: Window) -> int:
        """Sieve threshold of the block ``core``, pixels."""
        if not self.geographic:
            return self.centre_sieve
        # ground pixel area varies with latitude in geographic CRSs: measure it per block
        return sieve_threshold(
            self.min_area_m2,
            pixel_area_m2(
                self.raster.crs,
                self.raster.transform,
                core.col_off + core.width / 2,
                core.row_off + core.height / 2,
            ),
        )


def _block_jobs(
    read: BlockReader, blocked: _BlockGrid, blocks: list[Window], timings: dict[str, float]
) -> Iterator[BlockJob]:
    """Read each block with its halo, in order, as a job; the read time goes to ``timings``."""
    raster = blocked.raster
    for index, core in enumerate(blocks):
        threshold = blocked.block_sieve_threshold(core)
        t0 = time.perf_counter()
        window = haloed_window(core, raster.width, raster.height, halo_pixels(threshold))
        data = read(window)
        timings["read"] += time.perf_counter() - t0
        yield BlockJob(index, data, window, core, raster, threshold, blocked.tolerance_px)


@dataclass
class _FinishedRow:
    """The polygons that became final in the current row of blocks, until they are yielded."""

    geoms: list[np.ndarray] = field(default_factory=list)
    ids: list[np.ndarray] = field(default_factory=list)
    areas: list[np.ndarray] = field(default_factory=list)
    valid_pixels: int = 0

    def add(self, geoms: np.ndarray, ids: np.ndarray, areas: np.ndarray) -> None:
        """Add final polygons (CRS coordinates) with their class ids and ground areas."""
        self.geoms.append(geoms)
        self.ids.append(ids)
        self.areas.append(areas)

    def batch(self, blocked: _BlockGrid, timings: Mapping[str, float]) -> Polygons:
        """The row's polygons as one batch, in the order added; the row starts afresh."""
        geoms, ids, areas = self.geoms, self.ids, self.areas
        polygons = Polygons(
            geometries=np.concatenate(geoms) if geoms else np.empty(0, dtype=object),
            class_ids=np.concatenate(ids).astype(np.int64) if ids else np.empty(0, np.int64),
            area_m2=np.concatenate(areas) if areas else np.empty(0, dtype=np.float64),
            crs=blocked.raster.crs,
            valid_pixels=self.valid_pixels,
            sieve_pixels=blocked.centre_sieve,
            min_area_m2=float(blocked.min_area_m2),
            simplify_m=float(blocked.simplify_m),
            block_size=blocked.block_size,
            timings_s=dict(timings),
        )
        self.geoms, self.ids, self.areas = [], [], []
        self.valid_pixels = 0
        return polygons


def _collect_block(
    result: BlockResult,
    row: _FinishedRow,
    seams: OpenSeams,
    allowed_ids: frozenset[int] | None,
) -> None:
    """Keep a vectorized block's final polygons in ``row`` and its seam pieces in ``seams``.

    Raises
    ------
    VectorizeError
        If the block holds a class value outside ``allowed_ids``.
    """
    if not result.valid_pixels:
        return  # all nodata: nothing to keep
    row.valid_pixels += result.valid_pixels
    if allowed_ids is not None:
        check_allowed(result.present, allowed_ids)
    seams.add(result.seam_geoms, result.seam_ids, result.index)
    row.add(result.geoms, result.ids, result.areas)


def _close_row_seams(
    seams: OpenSeams,
    blocked: _BlockGrid,
    last_index: int,
    row: _FinishedRow,
    timings: dict[str, float],
) -> None:
    """Merge the seam pieces of the row of blocks ending at block ``last_index``.

    The merged polygons that reach no later row are final: they are added to ``row`` in CRS
    coordinates, with their ground areas.
    """
    raster = blocked.raster
    row_start = last_index // blocked.blocks_per_row * blocked.block_size
    row_end = min(raster.height, row_start + blocked.block_size)
    t0 = time.perf_counter()
    closed, closed_ids = seams.close_row(row_start, row_end if row_end < raster.height else None)
    timings["merge"] += time.perf_counter() - t0
    if len(closed):
        crs_geoms = to_crs_coordinates(closed, raster.transform)
        t0 = time.perf_counter()
        areas = ground_area_m2(crs_geoms, raster.crs)
        timings["area"] += time.perf_counter() - t0
        row.add(crs_geoms, closed_ids, areas)


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
