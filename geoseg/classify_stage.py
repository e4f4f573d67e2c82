"""The classify stage of a run: its tiles streamed through the model into a class raster.

Strips of tile rows are read block-aligned (one ahead, in a background thread), cut into chips
padded to one shape, classified in batches that span tile rows, and the cores of each tile row
joined and written behind as soon as the row's last tile is classified, so memory does not grow
with the scene. :func:`classify` runs it on the model's grid; the pipeline warps the result back
to the scene's grid where the two differ.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.config import PredictOptions
from geoseg.inference import Chips, Predictor, pad_chip
from geoseg.io.class_raster_writer import ClassRasterWriter, ConfidenceRasterWriter
from geoseg.io.output_set import OutputSet
from geoseg.io.scene_reader import SceneReader, Strip
from geoseg.memory import release_free_heap
from geoseg.prepare_run import PreparedRun
from geoseg.smoothing import StreamingMajority
from geoseg.stitching import Patch, core_patch, join_row
from geoseg.streaming import WriteBehind, read_ahead
from geoseg.tiling import Tile, TilePlan
from geoseg.vectorize import VectorizeResult
from geoseg.vectorize.background import BackgroundVectorizer

ProgressCallback = Callable[[int, int], None]
"""Called with ``(tiles_done, tiles_total)`` after each batch."""


@dataclass(frozen=True)
class Classified:
    """Class (and confidence) rasters a stage wrote, with their pixel counts and its timings.

    Parameters
    ----------
    classes : Path
        The class raster (a scratch file of the run's outputs).
    confidence : Path or None
        The confidence raster, if asked for.
    counts : np.ndarray
        Pixels per class value (256).
    date_counts : np.ndarray
        Of a multi-date run, each date's own class pixels on the model grid (dates x 256).
    confidence_counts : np.ndarray or None
        Pixels per confidence percent.
    timings : dict
        Seconds per step of the stage.
    """

    classes: Path
    confidence: Path | None
    counts: Any
    date_counts: Any
    confidence_counts: Any
    timings: dict[str, float]


def classify(
    run: PreparedRun,
    device: Any,
    outputs: OutputSet,
    anchor: Path,
    confidence: Path | None,
    provenance: str,
    options: PredictOptions,
    progress: ProgressCallback | None,
    vectorizer: BackgroundVectorizer[VectorizeResult] | None = None,
) -> Classified:
    """Stream the tiles of ``run`` through the model into a class raster on the model's grid.

    Strips are decoded one ahead in a background thread and finished rows are written behind,
    so on a GPU the device never waits for the disk. Batches span tile rows, so every forward
    pass is full; a row is written as soon as its last tile is classified (and handed to the
    background ``vectorizer``, if any).

    Parameters
    ----------
    run : PreparedRun
        The run: scene(s), model, grid and tile plan.
    device : torch.device
        Where the model runs.
    outputs : OutputSet
        The run's outputs; the rasters written are temporaries of it.
    anchor : Path
        The output beside which the class raster's scratch file goes.
    confidence : Path or None
        The confidence raster asked for: each pixel's confidence
        (:meth:`Predictor.classify_with_confidence`) goes to a second raster, stitched the same
        way; its temporary is the output itself unless the run is resampled.
    provenance : str
        Provenance (JSON) to tag the rasters with.
    options : PredictOptions
        Batch size, precision, test-time augmentation, smoothing, prefetch.
    progress : callable or None
        ``progress(tiles_done, tiles_total)`` after each row written.
    vectorizer : BackgroundVectorizer, optional
        Handed every final row of classes.

    Returns
    -------
    Classified
        The rasters on the model's grid, their counts, and the stage's timings.
    """
    predictor = Predictor(
        run.model,
        run.transform,
        device,
        compile=options.compile,  # decided by the pipeline (should_compile)
        precision=options.precision,
        legend=run.legend,
        tta=options.tta,
        own_network=run.owns_model,
    )
    path = outputs.scratch(anchor, "classes")
    confidence_path = None
    if confidence is not None:
        confidence_path = (
            outputs.scratch(confidence, "confidence")
            if run.resampled
            else outputs.reserve(confidence, "confidence")
        )
    plan = run.plan
    assert plan.multiple == predictor.size_multiple  # prepare planned the tiles for this network
    geometry = _ChipGeometry(plan)
    batch_size = options.batch_size or predictor.auto_batch_size(plan.chip_shape)
    # one predictor per date (the first is the scene itself), sharing the network
    predictors = [predictor, *(predictor.with_transform(d.transform) for d in run.dates)]
    # the majority filter holds back a few rows until the rows below them are known
    smoother = StreamingMajority(options.smooth, plan.height) if options.smooth else None
    confidence_writer: ConfidenceRasterWriter | None = None
    with contextlib.ExitStack() as stack:
        readers = _open_readers(stack, run)
        writer = stack.enter_context(ClassRasterWriter(path, run.grid, run.classes, provenance))
        write_behind = stack.enter_context(WriteBehind(writer.write, depth=2))
        if confidence_path is not None:
            confidence_writer = stack.enter_context(
                ConfidenceRasterWriter(confidence_path, run.grid, provenance)
            )
        strips = [
            stack.enter_context(contextlib.closing(_strips(r, plan, options.prefetch)))
            for r in readers
        ]
        rows = _RowWriter(
            plan, write_behind.submit, confidence_writer, smoother, vectorizer, progress
        )
        stream = _TileStream(geometry, predictors, batch_size, rows)
        stream.run(strips)
    timings = {
        "read": sum(r.busy_seconds for r in readers),
        "read_wait": stream.wait_s,
        "model": stream.model_s,
        "write_classes": writer.busy_seconds,
    }
    confidence_counts = None
    if confidence_writer is not None:
        timings["write_confidence"] = confidence_writer.busy_seconds
        confidence_counts = confidence_writer.counts
    return Classified(
        path, confidence_path, writer.counts, stream.date_counts, confidence_counts, timings
    )


@dataclass(frozen=True)
class _ChipGeometry:
    """Where a tile lies in its chip: every chip has the plan's one shape, on the absolute grid."""

    plan: TilePlan

    def cut(self, strip: Strip, tile: Tile) -> Chips:
        """The tile's chip (a batch of one), padded, out of the strip of its tile row."""
        window = slice(tile.cols.start, tile.cols.stop)
        chip, mask = pad_chip(
            strip.data[:, :, window],
            strip.valid[:, window],
            self.plan.chip_shape,
            self.plan.before(tile),
        )
        # copies, so a pending chip does not keep its whole strip alive
        return Chips(np.ascontiguousarray(chip)[None], np.ascontiguousarray(mask)[None])

    def unpad(self, classes: np.ndarray, tile: Tile) -> np.ndarray:
        """The part of a classified chip that is the tile's own pixels."""
        top, left = self.plan.before(tile)
        return classes[top : top + tile.rows.size, left : left + tile.cols.size]


class _RowWriter:
    """Joins the cores of classified tiles into full-width rows and writes them, in order.

    A row is written once all its tiles are in: through the majority filter (``smoother``), if
    any, to ``write`` and the background ``vectorizer``; the confidence of its tiles, if kept,
    to ``confidence_writer``. ``progress`` hears of every row written.
    """

    def __init__(
        self,
        plan: TilePlan,
        write: Callable[[Patch], None],
        confidence_writer: ConfidenceRasterWriter | None,
        smoother: StreamingMajority | None,
        vectorizer: BackgroundVectorizer[VectorizeResult] | None,
        progress: ProgressCallback | None,
    ) -> None:
        self.width = plan.width
        self.total = len(plan)
        self.tiles_by_row = [[t for t in plan if t.row == i] for i in range(len(plan.row_spans))]
        self.write = write
        self.confidence_writer = confidence_writer
        self.smoother = smoother
        self.vectorizer = vectorizer
        self.progress = progress
        self.finished: dict[tuple[int, int], np.ndarray] = {}
        self.finished_confidence: dict[tuple[int, int], np.ndarray] = {}
        self.next_row = 0
        self.done = 0

    @property
    def keeps_confidence(self) -> bool:
        """Whether the tiles' confidence is written too (so worth computing)."""
        return self.confidence_writer is not None

    def add(
        self,
        classes: dict[tuple[int, int], np.ndarray],
        confidence: dict[tuple[int, int], np.ndarray] | None = None,
    ) -> None:
        """Take classified tiles' own pixels (and confidence), by ``(row, col)`` of the tile."""
        self.finished.update(classes)
        if confidence is not None:
            self.finished_confidence.update(confidence)

    def write_ready(self, last_read: int) -> None:
        """Write every row whose tiles are all in, up to the tile row ``last_read``."""
        while self.next_row <= last_read and all(
            (t.row, t.col) in self.finished for t in self.tiles_by_row[self.next_row]
        ):
            row_tiles = self.tiles_by_row[self.next_row]
            self._write_row(row_tiles)
            self.done += len(row_tiles)
            self.next_row += 1
            if self.progress is not None:
                self.progress(self.done, self.total)

    def _write_row(self, row_tiles: list[Tile]) -> None:
        patches = [core_patch(t, self.finished.pop((t.row, t.col))) for t in row_tiles]
        row = join_row(patches, self.width)
        for final in self.smoother.push(row) if self.smoother is not None else [row]:
            self.write(final)
            if self.vectorizer is not None:
                self.vectorizer.add_rows(final.rows.start, final.data)
        if self.confidence_writer is not None:
            self.confidence_writer.write(
                join_row(
                    [
                        core_patch(t, self.finished_confidence.pop((t.row, t.col)))
                        for t in row_tiles
                    ],
                    self.width,
                )
            )


class _TileStream:
    """One pass over the tile rows: chips cut from each row's strips, classified in full batches.

    The chips of a row wait in ``pending`` until a batch is full (or the last row is read), so
    every forward pass but the last is full; classified tiles go to ``rows``. It keeps each
    date's own class counts (``date_counts``) and the seconds spent waiting for strips and in
    the model.
    """

    def __init__(
        self,
        geometry: _ChipGeometry,
        predictors: list[Predictor],
        batch_size: int,
        rows: _RowWriter,
    ) -> None:
        self.geometry = geometry
        self.predictors = predictors
        self.batch_size = batch_size
        self.rows = rows
        self.pending: list[tuple[Tile, list[Chips]]] = []
        self.date_counts = np.zeros((len(predictors), 256), dtype=np.int64)
        self.wait_s = 0.0
        self.model_s = 0.0

    def run(self, strips: Sequence[Iterator[Strip]]) -> None:
        """Read, classify and write every tile row; ``strips`` yields each reader's rows."""
        tiles_by_row = self.rows.tiles_by_row
        last_row = len(tiles_by_row) - 1
        for i in range(len(tiles_by_row)):
            self._cut_row(tiles_by_row[i], strips)
            while len(self.pending) >= self.batch_size or (i == last_row and self.pending):
                group = self.pending[: self.batch_size]
                self.pending = self.pending[self.batch_size :]
                self._classify(group)
            release_free_heap()  # a strip's worth of freed arrays goes back, so RSS stays flat
            self.rows.write_ready(i)

    def _cut_row(self, tiles: list[Tile], strips: Sequence[Iterator[Strip]]) -> None:
        """Read the next strip of every reader and queue the chips of the row's tiles."""
        t0 = time.perf_counter()
        row_strips = [next(s) for s in strips]
        self.wait_s += time.perf_counter() - t0
        for t in tiles:
            self.pending.append((t, [self.geometry.cut(strip, t) for strip in row_strips]))
        # the strips go on return, before the batches run: only the chips are needed now, and
        # a strip is not kept while the next is decoded

    def _classify(self, group: list[tuple[Tile, list[Chips]]]) -> None:
        """Classify a batch of tiles and hand each tile's own pixels to ``rows``."""
        t0 = time.perf_counter()
        classes, confidence = self._forward(group)
        self.model_s += time.perf_counter() - t0
        tiles = [t for t, _ in group]
        kept = None
        if self.rows.keeps_confidence and confidence is not None:
            kept = self._own_pixels(tiles, confidence)
        self.rows.add(self._own_pixels(tiles, classes), kept)

    def _own_pixels(
        self, tiles: list[Tile], chips: np.ndarray
    ) -> dict[tuple[int, int], np.ndarray]:
        return {
            (t.row, t.col): self.geometry.unpad(c, t) for t, c in zip(tiles, chips, strict=True)
        }

    def _forward(
        self, group: list[tuple[Tile, list[Chips]]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Classes of a batch of chips, with their confidence where it is kept or comes anyway.

        A multi-date batch is fused over its dates, and each date's own classes counted.
        """
        predictor = self.predictors[0]
        if len(self.predictors) == 1 and not self.rows.keeps_confidence:
            return predictor.classify(_stack([chips[0] for _, chips in group])), None
        if len(self.predictors) == 1:
            return predictor.classify_with_confidence(_stack([chips[0] for _, chips in group]))
        batches = [_stack([chips[d] for _, chips in group]) for d in range(len(self.predictors))]
        classes, singles, confidence = predictor.fuse(
            list(zip(self.predictors, batches, strict=True))
        )
        for d, single in enumerate(singles):
            for (t, _), ids in zip(group, single, strict=True):
                core = core_patch(t, self.geometry.unpad(ids, t)).data
                self.date_counts[d] += np.bincount(core.ravel(), minlength=256)
        return classes, confidence


def _open_readers(stack: contextlib.ExitStack, run: PreparedRun) -> list[SceneReader]:
    """A reader onto the run's grid for the scene and for each further date, in that order.

    The run's grid is in the first scene's CRS, so a date in another CRS is warped onto it.
    """
    return [
        stack.enter_context(SceneReader(run.scene, run.bands, run.grid)),
        *(stack.enter_context(SceneReader(d.scene, d.bands.indexes, run.grid)) for d in run.dates),
    ]


def _strips(reader: SceneReader, plan: TilePlan, prefetch: bool) -> Generator[Strip, None, None]:
    # a generator, so closing it (before the reader closes) stops the read-ahead thread first
    yield from read_ahead(reader.strips(plan), depth=1) if prefetch else reader.strips(plan)


def _stack(chips: list[Chips]) -> Chips:
    return Chips(np.concatenate([c.data for c in chips]), np.concatenate([c.valid for c in chips]))
