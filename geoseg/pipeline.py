"""The one place that knows the order of the stages: scene, tiles, model, class raster, GPKG.

``predict`` streams: strips of tile rows are read block-aligned, classified in batches, and their
cores written to a temporary class raster as each row completes, so memory does not grow with the
scene. Its stages (prepare, classify, back to the scene grid, deliver) return their results and
their timings. Every output is written under a temporary name of one
:class:`~geoseg.io.output_set.OutputSet` and renamed into place only when all of them are complete,
the run report last: a failed or interrupted run leaves nothing at the output paths.

Preparing a run is :mod:`geoseg.prepare_run` and the streaming classification
:mod:`geoseg.classify_stage`; this module orders them, checks the outputs before any work, warps
back to the scene's grid and delivers (COG, polygons, run report).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# the names of the stages' modules ``X as X`` are re-exported: callers import them from here
from geoseg.classify_stage import Classified as Classified
from geoseg.classify_stage import ProgressCallback as ProgressCallback
from geoseg.classify_stage import classify
from geoseg.config import DEFAULT_BLOCK_SIZE
from geoseg.config import PredictOptions as PredictOptions  # re-exported: callers import it here
from geoseg.errors import ConfigError, EmptySceneError
from geoseg.inference import resolve_device, should_compile, uses_bf16
from geoseg.io.class_raster import BlockReader
from geoseg.io.class_raster_writer import (
    ClassRasterWriter,
    ConfidenceRasterWriter,
    raster_sidecars,
    warp_to_scene,
    write_cog,
)
from geoseg.io.output_set import OutputSet, check_not_inputs, check_outputs
from geoseg.io.polygon_confidence import add_mean_confidence
from geoseg.io.vector_formats import check_vector_format, export_layer, output_files
from geoseg.memory import bound_heap_growth
from geoseg.models.card import GSD_TOLERANCE as GSD_TOLERANCE
from geoseg.models.loading import LoadedModel
from geoseg.prepare_run import MAX_UPSAMPLING as MAX_UPSAMPLING
from geoseg.prepare_run import DateInput as DateInput
from geoseg.prepare_run import PreparedRun as PreparedRun
from geoseg.prepare_run import prepare as prepare
from geoseg.provenance import Provenance
from geoseg.report import confidence_summary, report_paths, write_run_report
from geoseg.vectorize import (
    LayerSpec,
    VectorizeResult,
    parse_crs,
    vectorize_blocks,
    vectorize_raster,
)
from geoseg.vectorize.background import BackgroundVectorizer
from geoseg.workers import check_not_importing_main, effective_workers

log = logging.getLogger(__name__)

#: Block side (pixels) of the vectorisation of a prediction.
VECTORIZE_BLOCK_SIZE = DEFAULT_BLOCK_SIZE


@dataclass(frozen=True)
class PredictResult:
    """What a prediction run produced.

    Parameters
    ----------
    gpkg, raster : Path or None
        Outputs written.
    model : str
        Model used.
    bands : tuple of int
        Scene bands fed to the model, in model order.
    tiles : int
        Tiles predicted.
    class_pixels : dict
        Pixel count per class name on the scene grid.
    timings : dict
        Seconds per stage.
    resampled : bool
        Whether the scene was resampled to the model's ground sample distance.
    polygons : int or None
        Polygons written to the GeoPackage.
    report : Path or None
        The run report (JSON; a quicklook PNG lies beside it).
    date_class_pixels : tuple of dict
        For a multi-date run, each date's own class pixel counts (on the model grid), in the
        order the scenes were given; empty otherwise.
    confidence : Path or None
        The confidence raster written, if asked for.
    confidence_summary : dict
        With ``confidence``: its mean and the share of mapped pixels below each threshold.
    """

    gpkg: Path | None
    raster: Path | None
    model: str
    bands: tuple[int, ...]
    tiles: int
    class_pixels: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    resampled: bool = False
    polygons: int | None = None
    report: Path | None = None
    date_class_pixels: tuple[dict[str, int], ...] = ()
    confidence: Path | None = None
    confidence_summary: dict[str, float] = field(default_factory=dict)


def predict(
    scene_path: str | Path | Sequence[str | Path],
    out: str | Path | None,
    *,
    model: str | Path | LoadedModel | None = None,
    raster: str | Path | None = None,
    options: PredictOptions | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    confidence: str | Path | None = None,
) -> PredictResult:
    """Segment a scene into land cover: a GeoPackage of polygons and, optionally, a class raster.

    Parameters
    ----------
    scene_path : str or Path, or a sequence of them
        GeoTIFF or VRT scene; several scenes are dates of one place (any CRS or grid), read onto
        the first one's grid, and each pixel's class is the most probable after averaging the
        class probabilities over the dates where it is valid (clouds masked as nodata drop out).
    out : str or Path or None
        GeoPackage to write (layer ``landcover``); ``None`` writes only ``raster``.
    model : str or Path or LoadedModel, optional
        Embedded model name, model file, or a loaded model. Default: the embedded model whose
        bands the scene has.
    raster : str or Path, optional
        Class raster (Cloud-Optimized GeoTIFF) to write as well.
    options : PredictOptions, optional
        Tiling, device, band and vectorisation settings.
    overwrite : bool
        Replace existing outputs.
    progress : callable, optional
        ``progress(tiles_done, tiles_total)``.
    confidence : str or Path, optional
        A GeoTIFF to write each pixel's confidence to: the probability of its mapped class in
        percent (uint8 0-100, nodata 255), on the class raster's grid.

    Returns
    -------
    PredictResult

    Raises
    ------
    GeosegError
        With a one-line message for every bad input; no partial output is left behind.
    """
    check_not_importing_main()
    options = options or PredictOptions()
    scenes = (scene_path,) if isinstance(scene_path, str | Path) else tuple(scene_path)
    if not scenes:
        raise ConfigError("no scene to predict")
    model_file = (model,) if isinstance(model, str | Path) and Path(model).suffix else ()
    paths = _output_paths(out, raster, confidence, overwrite, (*scenes, *model_file))
    bound_heap_growth()
    start = time.perf_counter()
    run = prepare(scenes[0], model, options, scenes[1:])
    timings = {"prepare": time.perf_counter() - start}
    device = resolve_device(options.device)
    # decided once, before the first tile: the run report says what the network ran as
    options = dataclasses.replace(options, compile=should_compile(options.compile, device))
    provenance = _provenance(run, str(scenes[0]), options, device)
    parse_crs(options.dst_crs)  # a bad CRS fails now, not after inference
    with OutputSet() as outputs, contextlib.ExitStack() as stack:
        gpkg_tmp = _gpkg_temporary(paths, outputs)
        vectorizer = _background_vectorizer(run, gpkg_tmp, options, provenance, str(scenes[0]))
        if vectorizer is not None:
            stack.enter_context(vectorizer)
        on_model_grid = classify(
            run,
            device,
            outputs,
            paths.anchor,
            paths.confidence,
            provenance.to_json(),
            options,
            progress,
            vectorizer,
        )
        classified = _to_scene_grid(run, on_model_grid, outputs, paths, provenance.to_json())
        class_pixels = {c.name: int(classified.counts[c.id]) for c in run.classes}
        if sum(class_pixels.values()) == 0:
            raise EmptySceneError(f"scene {run.scene.path} holds no valid pixel (it is all nodata)")
        if run.dates:
            provenance = _with_date_counts(provenance, run, classified.date_counts)
        delivered = _deliver(
            run,
            classified,
            outputs,
            paths,
            gpkg_tmp,
            vectorizer,
            options,
            provenance,
            str(scenes[0]),
            {**timings, **on_model_grid.timings, **classified.timings},
        )
    timings = {**timings, **on_model_grid.timings, **classified.timings, **delivered.timings}
    timings["total"] = time.perf_counter() - start
    return PredictResult(
        gpkg=paths.gpkg,
        raster=paths.raster,
        model=run.model.source,
        bands=run.bands,
        tiles=len(run.plan),
        class_pixels=class_pixels,
        timings=timings,
        resampled=run.resampled,
        polygons=delivered.polygons,
        report=delivered.report,
        date_class_pixels=_date_class_pixels(run, classified.date_counts) if run.dates else (),
        confidence=paths.confidence,
        confidence_summary=delivered.confidence_summary,
    )


@dataclass(frozen=True)
class OutputPaths:
    """Where a run's outputs go, checked before any work.

    Parameters
    ----------
    gpkg : Path or None
        The polygons (a GeoPackage, or another vector format by its extension).
    raster : Path or None
        The class raster (its ``.aux.xml`` and ``.qml`` go beside it).
    confidence : Path or None
        The confidence raster.
    """

    gpkg: Path | None
    raster: Path | None
    confidence: Path | None

    @property
    def anchor(self) -> Path:
        """The output beside which the class raster's scratch files go."""
        anchor = self.raster or self.gpkg
        assert anchor is not None  # checked by _output_paths
        return anchor

    @property
    def reports(self) -> tuple[Path, ...]:
        """The run report's JSON and PNG, with a ``gpkg``."""
        return report_paths(self.gpkg) if self.gpkg is not None else ()


def _output_paths(
    out: str | Path | None,
    raster: str | Path | None,
    confidence: str | Path | None,
    overwrite: bool,
    inputs: tuple[str | Path, ...] = (),
) -> OutputPaths:
    """Check every output a run would write, before any work; none may be one of ``inputs``."""
    paths = OutputPaths(
        Path(out) if out is not None else None,
        Path(raster) if raster is not None else None,
        Path(confidence) if confidence is not None else None,
    )
    if paths.confidence is not None and paths.confidence.suffix.lower() not in (".tif", ".tiff"):
        raise ConfigError(f"--confidence {paths.confidence} must be a GeoTIFF (.tif)")
    if paths.gpkg is None and paths.raster is None:
        raise ConfigError("nothing to write: give an output GeoPackage or a class raster")
    vector_files: list[Path] = []
    if paths.gpkg is not None:
        check_vector_format(paths.gpkg)  # an unknown extension fails before any work
        vector_files = output_files(paths.gpkg)
    raster_style = paths.raster.with_suffix(".qml") if paths.raster is not None else None
    written = [*vector_files, paths.raster, raster_style, paths.confidence, *paths.reports]
    check_not_inputs(written, inputs)
    check_outputs(written, overwrite)
    return paths


def _gpkg_temporary(paths: OutputPaths, outputs: OutputSet) -> Path | None:
    """The GeoPackage the polygons are built in: the output itself, or a scratch to export."""
    if paths.gpkg is None:
        return None
    # the layer is built as a GeoPackage whatever the format asked for
    if paths.gpkg.suffix.lower() == ".gpkg":
        return outputs.reserve(paths.gpkg, "gpkg")
    return outputs.scratch(paths.gpkg.with_suffix(".gpkg"), "gpkg")


def _provenance(
    run: PreparedRun, source: str, options: PredictOptions, device: torch.device
) -> Provenance:
    return Provenance(
        model_name=run.model.source,
        model_sha256=run.model.sha256,
        input_path=source,
        parameters={
            "bands": list(run.bands),
            "tile_size": run.plan.tile_size,
            "overlap": run.plan.overlap,
            "resampled_to_m": run.model.card.gsd if run.resampled else None,
            **run.decisions(),
            "min_area_m2": options.min_area_m2,
            "simplify_m": options.simplify_m,
            "tta": options.tta,
            "smooth": options.smooth,
            # these move only near-ties (about 0.1-0.5% of pixels), but a rerun should know them
            "device": device.type,
            "precision": "bf16" if uses_bf16(options.precision, device) else "fp32",
            "compile": options.compile,
        },
    )


def _with_date_counts(provenance: Provenance, run: PreparedRun, date_counts: Any) -> Provenance:
    """Each date's own classes beside the fused ones (on the model grid)."""
    scenes = (run.scene, *(d.scene for d in run.dates))
    per_date = [
        {"scene": s.path, **pixels}
        for s, pixels in zip(scenes, _date_class_pixels(run, date_counts), strict=True)
    ]
    return dataclasses.replace(
        provenance, parameters={**provenance.parameters, "date_class_pixels": per_date}
    )


def _date_class_pixels(run: PreparedRun, date_counts: Any) -> tuple[dict[str, int], ...]:
    """Each date's own class pixel counts, by class name, in the order of the dates."""
    return tuple({c.name: int(n[c.id]) for c in run.classes} for n in date_counts)


def _to_scene_grid(
    run: PreparedRun,
    classified: Classified,
    outputs: OutputSet,
    paths: OutputPaths,
    provenance: str,
) -> Classified:
    """Warp rasters classified on a resampled grid back onto the scene's own grid."""
    if not run.resampled:
        return dataclasses.replace(classified, timings={})
    start = time.perf_counter()
    grid = run.output_grid
    classes = outputs.scratch(paths.anchor, "scene")
    with ClassRasterWriter(classes, grid, run.classes, provenance) as writer:
        warp_to_scene(classified.classes, run.scene, run.bands, writer, mask=not run.dates)
    confidence = confidence_counts = None
    if classified.confidence is not None and paths.confidence is not None:
        confidence = outputs.reserve(paths.confidence, "scene")
        with ConfidenceRasterWriter(confidence, grid, provenance) as confidence_writer:
            warp_to_scene(
                classified.confidence, run.scene, run.bands, confidence_writer, mask=not run.dates
            )
        confidence_counts = confidence_writer.counts
    return Classified(
        classes,
        confidence,
        writer.counts,
        classified.date_counts,
        confidence_counts,
        {"resample_back": time.perf_counter() - start},
    )


@dataclass(frozen=True)
class Delivered:
    """What the last stage made of the classes: polygons, the report, the confidence summary."""

    polygons: int | None
    report: Path | None
    confidence_summary: dict[str, float]
    timings: dict[str, float]


def _deliver(
    run: PreparedRun,
    classified: Classified,
    outputs: OutputSet,
    paths: OutputPaths,
    gpkg_tmp: Path | None,
    vectorizer: BackgroundVectorizer[VectorizeResult] | None,
    options: PredictOptions,
    provenance: Provenance,
    source: str,
    earlier: dict[str, float],
) -> Delivered:
    """Write the outputs from the classes: COG, polygons, run report, as temporaries of ``outputs``.

    The report gives the timings ``earlier`` and this stage's.
    """
    timings: dict[str, float] = {}
    report_source = classified.classes
    if paths.raster is not None:
        t0 = time.perf_counter()
        cog = outputs.reserve(paths.raster, "cog")
        write_cog(classified.classes, cog, run.classes)
        for sidecar, text in raster_sidecars(paths.raster, run.classes).items():
            outputs.reserve(sidecar, "sidecar").write_text(text, encoding="utf-8")
        report_source = cog  # its overviews make the quicklook's read cheap
        timings["write_raster"] = time.perf_counter() - t0
    summary: dict[str, float] = {}
    if classified.confidence is not None:
        summary = confidence_summary(classified.confidence_counts)
        log.info(
            "confidence: mean %.0f%%, %.1f%% of the mapped pixels below 50%%",
            summary["mean_percent"],
            summary["below_50_percent"],
        )
    if paths.gpkg is None or gpkg_tmp is None:
        return Delivered(None, None, summary, timings)
    t0 = time.perf_counter()
    if vectorizer is not None:
        vectors = vectorizer.result()
        timings["vectorize_wait"] = vectorizer.buffer.wait_seconds
    else:
        vectors = _vectorize(classified.classes, gpkg_tmp, run, options, provenance, source)
    if classified.confidence is not None:
        t1 = time.perf_counter()
        add_mean_confidence(gpkg_tmp, vectors.layer, classified.confidence)
        timings["polygon_confidence"] = time.perf_counter() - t1
    if paths.gpkg.suffix.lower() != ".gpkg":
        for temporary, final in export_layer(gpkg_tmp, paths.gpkg):
            outputs.adopt(temporary, final)
    timings["vectorize"] = time.perf_counter() - t0
    json_path, png_path = paths.reports
    # the report goes in last (the quicklook before the JSON), so it never describes outputs
    # that are not there
    png_file = outputs.reserve(png_path, "quicklook", last=True)
    json_file = outputs.reserve(json_path, "report", last=True)
    report = write_run_report(
        paths.gpkg,
        report_source,
        vectors,
        {**earlier, **timings},
        provenance=provenance,
        classes=run.classes,
        class_raster_label=str(paths.raster) if paths.raster else "(not kept)",
        confidence=summary,
        overwrite=True,
        write_to=(json_file, png_file),
    ).json_path
    return Delivered(vectors.polygon_count, report, summary, timings)


def _background_vectorizer(
    run: PreparedRun,
    gpkg: Path | None,
    options: PredictOptions,
    provenance: Provenance,
    source: str,
) -> BackgroundVectorizer[VectorizeResult] | None:
    """A vectorizer writing ``gpkg`` from the class rows while the model runs, where it applies.

    It needs a GeoPackage to make, classes on the scene's own grid (a resampled run is
    vectorized after it is warped back) and worker processes to run in.
    """
    grid = run.output_grid  # the model's too: a resampled run gets no background vectorizer
    workers = effective_workers(
        options.vectorize_workers, grid.width, grid.height, VECTORIZE_BLOCK_SIZE
    )
    if gpkg is None or run.resampled or workers < 2:
        return None
    classes = run.classes
    settings = dataclasses.replace(options.vectorize_options(VECTORIZE_BLOCK_SIZE), workers=workers)
    layer = LayerSpec(
        classes=classes,
        source=source,
        provenance=provenance,
        allowed_ids=frozenset(c.id for c in classes),
        colormap=None,
        fields=run.fields(),
    )

    def vectorize(read: BlockReader) -> VectorizeResult:
        return vectorize_blocks(
            read,
            grid,
            gpkg,
            layer=layer,
            options=settings,
            overwrite=True,
            started=time.perf_counter(),
            background=True,
        )

    return BackgroundVectorizer(grid.height, VECTORIZE_BLOCK_SIZE, vectorize)


def _vectorize(
    classes_path: Path,
    gpkg_path: Path,
    run: PreparedRun,
    options: PredictOptions,
    provenance: Provenance,
    source: str,
) -> VectorizeResult:
    return vectorize_raster(
        classes_path,
        gpkg_path,
        classes=run.classes,
        overwrite=True,
        provenance=provenance,
        source=source,
        fields=run.fields(),
        options=options.vectorize_options(VECTORIZE_BLOCK_SIZE),
    )
