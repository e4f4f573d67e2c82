"""The one place that knows the order of the stages: scene, tiles, model, class raster, GPKG.

``predict`` streams: strips of tile rows are read block-aligned, classified in batches, and their
cores written to a temporary class raster as each row completes, so memory does not grow with the
scene. Its stages (prepare, classify, back to the scene grid, deliver) return their results and
their timings. Every output is written under a temporary name of one
:class:`~geoseg.io.output_set.OutputSet` and renamed into place only when all of them are complete,
the run report last: a failed or interrupted run leaves nothing at the output paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.bands import BandMatch, resolve_bands
from geoseg.config import DEFAULT_BLOCK_SIZE, TTA_MODES
from geoseg.config import PredictOptions as PredictOptions  # re-exported: callers import it here
from geoseg.errors import BandMappingError, ConfigError, EmptySceneError, InvalidSceneError
from geoseg.inference import (
    Chips,
    Predictor,
    chip_shape,
    grid_origin,
    pad_chip,
    resolve_device,
    tile_multiple,
)
from geoseg.io.class_raster import BlockReader
from geoseg.io.class_raster_writer import (
    ClassRasterWriter,
    ConfidenceRasterWriter,
    raster_sidecars,
    warp_to_scene,
    write_cog,
)
from geoseg.io.output_set import OutputSet, check_outputs
from geoseg.io.polygon_confidence import add_mean_confidence
from geoseg.io.scene import Scene, open_scene, read_sample
from geoseg.io.scene_reader import Grid, SceneReader, Strip, resampled_grid, scene_grid
from geoseg.io.vector_formats import check_vector_format, export_layer, output_files
from geoseg.memory import bound_heap_growth, release_free_heap
from geoseg.models.card import ClassInfo, Legend
from geoseg.models.loading import LoadedModel, choose_default_model, load_model
from geoseg.normalization import InputTransform
from geoseg.provenance import Provenance
from geoseg.radiometry import (
    Radiometry,
    assume_from_sample,
    resolve_radiometry,
    to_model_level,
)
from geoseg.report import confidence_summary, report_paths, write_run_report
from geoseg.smoothing import StreamingMajority
from geoseg.stitching import core_patch, join_row
from geoseg.streaming import WriteBehind, read_ahead
from geoseg.tiling import Span, Tile, TilePlan, plan_tiles
from geoseg.vectorize import (
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

ProgressCallback = Callable[[int, int], None]
"""Called with ``(tiles_done, tiles_total)`` after each batch."""

# Resample when the scene's pixel size differs from the model's by more than this ratio; never
# upsample by more than MAX_UPSAMPLING per side (finer pixels than that add cost, not information).
GSD_TOLERANCE = 1.25
MAX_UPSAMPLING = 4.0


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


@dataclass(frozen=True)
class DateInput:
    """Another date of the scene: read onto the first scene's grid, its classes fused.

    Parameters
    ----------
    scene : Scene
        The date's scene.
    bands : BandMatch
        Its bands feeding the model.
    transform : InputTransform
        Its values -> model input (each date has its own radiometry).
    """

    scene: Scene
    bands: BandMatch
    transform: InputTransform


@dataclass(frozen=True)
class PreparedRun:
    """Everything decided before the first tile is read.

    ``dates`` are the other dates of a multi-date run (the first is ``scene``): every tile is
    predicted on each date and the class probabilities averaged over the dates where the pixel
    is valid.
    """

    scene: Scene
    model: LoadedModel
    bands: tuple[int, ...]
    transform: InputTransform
    grid: Grid
    plan: TilePlan
    band_match: BandMatch
    legend: Legend
    dates: tuple[DateInput, ...] = ()

    @property
    def output_grid(self) -> Grid:
        """The grid of the outputs: the scene's own."""
        return scene_grid(self.scene)

    @property
    def resampled(self) -> bool:
        """Whether the model runs on another grid than the scene's (its pixel size differs)."""
        return self.grid != self.output_grid

    @property
    def radiometry(self) -> Radiometry:
        """How the scene's values became reflectance."""
        return self.transform.radiometry

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        """The classes the run delivers (its legend's)."""
        return self.legend.classes

    def fields(self) -> dict[str, str]:
        """Fields every polygon carries: the source scene(s) and acquisition date(s)."""
        scenes = (self.scene, *(d.scene for d in self.dates))
        return {
            "source_scene": ";".join(s.name for s in scenes),
            "acquired": ";".join(s.acquired for s in scenes if s.acquired),
        }

    def decisions(self) -> dict[str, Any]:
        """What geoseg decided about the input, for the run report and provenance."""
        card = self.model.card
        decided: dict[str, Any] = {
            "bands": self.band_match.describe(card.bands, self.scene.descriptions),
            "radiometry": self.radiometry.to_dict(),
            "legend": self.legend.name,
        }
        for scene in (self.scene, *(d.scene for d in self.dates)):
            if scene.qa_pixel is not None:
                masks = decided.setdefault("cloud_masks", {})
                qa_file, qa_band = scene.qa_pixel
                masks[scene.path] = f"QA_PIXEL: band {qa_band} of {Path(qa_file).name}"
        if self.dates:
            decided["fusion"] = "mean of the class probabilities over the dates valid at a pixel"
            decided["dates"] = [
                {
                    "scene": d.scene.path,
                    "bands": d.bands.describe(card.bands, d.scene.descriptions),
                    "radiometry": d.transform.radiometry.to_dict(),
                }
                for d in self.dates
            ]
        return decided


def prepare(
    scene_path: str | Path,
    model: str | Path | LoadedModel | None,
    options: PredictOptions,
    dates: tuple[str | Path, ...] = (),
) -> PreparedRun:
    """Open and check the scene(s), pick and load the model, match bands, decide reflectance, plan.

    ``dates`` are further scenes of the same place (any CRS or grid), read onto the first
    scene's grid and fused with it.

    Raises
    ------
    GeosegError
        Any problem with the scene, the model, the bands or the options, before work starts.
    """
    scene = open_scene(scene_path)
    if model is None:
        requested = len(options.bands) if options.bands else None
        name = choose_default_model(scene.descriptions, scene.colors, scene.sensor, requested)
        log.info("using embedded model %s (no --model given)", name)
        model = name
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    card = loaded.card
    legend = card.legend(options.legend)
    match = resolve_bands(card.bands, scene.descriptions, options.bands, scene.colors, scene.sensor)
    bands = match.indexes
    described = scene.radiometric_info()
    declared = resolve_radiometry(described, bands, card.bands, options.radiometry)
    sample, valid = read_sample(scene, bands)
    if not valid.any():
        raise EmptySceneError(f"scene {scene.path} holds no valid pixel (it is all nodata)")
    radiometry = to_model_level(
        assume_from_sample(declared, sample, valid, card.bands, described),
        card.bands,
        card.reflectance_level,
    )
    transform = InputTransform(radiometry, card.normalization)
    # said once the scene is known to be usable, so a refused scene gets one line only
    log.info("%s", match.describe(card.bands, scene.descriptions))
    (log.warning if radiometry.assumed else log.info)("reflectance: %s", radiometry.source)
    if scene.qa_pixel is not None:
        log.info(
            "clouds: fill, cloud, cirrus and cloud shadow flagged in %s (QA_PIXEL, band %d) "
            "are nodata",
            Path(scene.qa_pixel[0]).name,
            scene.qa_pixel[1],
        )
    _check_sample(scene, sample, valid, radiometry)
    grid = scene_grid(scene)
    if options.resample and card.gsd is not None:
        factor = card.gsd / scene.gsd
        if not 1 / GSD_TOLERANCE <= factor <= GSD_TOLERANCE:
            if factor < 1 / MAX_UPSAMPLING:
                log.warning(
                    "scene pixels (%.1f m) are much coarser than the model's (%.1f m): upsampling "
                    "by %.0fx only; results may be poor",
                    scene.gsd,
                    card.gsd,
                    MAX_UPSAMPLING,
                )
                factor = 1 / MAX_UPSAMPLING
            grid = resampled_grid(scene, factor)
            log.info(
                "resampling the scene from %.2f m to %.2f m pixels for the model",
                scene.gsd,
                scene.gsd * factor,
            )
    multiple = tile_multiple(loaded.card) * TTA_MODES[options.tta].grid_multiple
    tile_size = options.tile_size or card.tile_size
    tile_size = math.ceil(tile_size / multiple) * multiple
    overlap = card.overlap if options.overlap is None else options.overlap
    plan = plan_tiles(grid.height, grid.width, tile_size, overlap)
    others = tuple(_prepare_date(path, scene, loaded, options) for path in dates)
    return PreparedRun(scene, loaded, bands, transform, grid, plan, match, legend, others)


def _prepare_date(
    path: str | Path, first: Scene, model: LoadedModel, options: PredictOptions
) -> DateInput:
    """Check another date before any pixel is read: same bands, overlapping the first."""
    from rasterio.warp import transform_bounds

    date = open_scene(path)
    card = model.card
    try:
        match = resolve_bands(
            card.bands, date.descriptions, options.bands, date.colors, date.sensor
        )
    except BandMappingError as exc:
        raise BandMappingError(f"date {date.path}: {exc}") from exc
    left, bottom, right, top = transform_bounds(date.crs, first.crs, *_bounds(date))
    f_left, f_bottom, f_right, f_top = _bounds(first)
    if left >= f_right or right <= f_left or bottom >= f_top or top <= f_bottom:
        raise InvalidSceneError(f"date {date.path} does not overlap the first scene {first.path}")
    described = date.radiometric_info()
    declared = resolve_radiometry(described, match.indexes, card.bands, options.radiometry)
    sample, valid = read_sample(date, match.indexes, max_pixels=1_000_000)
    radiometry = to_model_level(
        assume_from_sample(declared, sample, valid, card.bands, described),
        card.bands,
        card.reflectance_level,
    )
    log.info(
        "date %s: %s; reflectance: %s",
        date.name,
        match.describe(card.bands, date.descriptions),
        radiometry.source,
    )
    return DateInput(date, match, InputTransform(radiometry, card.normalization))


def _bounds(scene: Scene) -> tuple[float, float, float, float]:
    xs = (scene.transform.c, scene.transform.c + scene.transform.a * scene.width)
    ys = (scene.transform.f, scene.transform.f + scene.transform.e * scene.height)
    return (min(xs), min(ys), max(xs), max(ys))


def _check_sample(
    scene: Scene, sample: np.ndarray, valid: np.ndarray, radiometry: Radiometry
) -> None:
    """Say in one line what the sample shows about fill and about the reflectance scale."""
    fill = np.all(sample == 0, axis=0)
    if fill.any():
        share = 100.0 * float(fill.mean())
        log.warning(
            "%.1f%% of the sampled pixels are 0 in every band: treated as nodata (fill)%s",
            share,
            "" if scene.nodata is None else f", as well as the declared nodata {scene.nodata:g}",
        )
    scale = np.asarray(radiometry.scale, dtype=np.float64)[:, None]
    offset = np.asarray(radiometry.offset, dtype=np.float64)[:, None]
    reflectance = sample[:, valid].astype(np.float64) * scale + offset
    median = float(np.median(reflectance)) if reflectance.size else 0.0
    # land and water reflectance lies between about 0.01 and 0.6: far outside, the scale is wrong
    if not -0.05 <= median <= 1.5:
        log.warning(
            "the scene's median reflectance comes out as %.3g with %s: if that is wrong, say "
            "what the values are with --product or --scale",
            median,
            radiometry.source,
        )


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
    paths = _output_paths(out, raster, confidence, overwrite)
    bound_heap_growth()
    start = time.perf_counter()
    scenes = (scene_path,) if isinstance(scene_path, str | Path) else tuple(scene_path)
    if not scenes:
        raise ConfigError("no scene to predict")
    run = prepare(scenes[0], model, options, scenes[1:])
    timings = {"prepare": time.perf_counter() - start}
    device = resolve_device(options.device)
    provenance = _provenance(run, str(scenes[0]), options)
    parse_crs(options.dst_crs)  # a bad CRS fails now, not after inference
    with OutputSet() as outputs, contextlib.ExitStack() as stack:
        gpkg_tmp = None
        if paths.gpkg is not None:
            # the layer is built as a GeoPackage whatever the format asked for
            gpkg_tmp = (
                outputs.reserve(paths.gpkg, "gpkg")
                if paths.gpkg.suffix.lower() == ".gpkg"
                else outputs.scratch(paths.gpkg.with_suffix(".gpkg"), "gpkg")
            )
        vectorizer = _background_vectorizer(run, gpkg_tmp, options, provenance, str(scenes[0]))
        if vectorizer is not None:
            stack.enter_context(vectorizer)
        on_model_grid = _classify(
            run, device, outputs, paths, provenance.to_json(), options, progress, vectorizer
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
        date_class_pixels=tuple(
            {c.name: int(n[c.id]) for c in run.classes} for n in classified.date_counts
        )
        if run.dates
        else (),
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
) -> OutputPaths:
    """Check every output a run would write, before any work."""
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
    check_outputs(
        [*vector_files, paths.raster, raster_style, paths.confidence, *paths.reports], overwrite
    )
    return paths


def _provenance(run: PreparedRun, source: str, options: PredictOptions) -> Provenance:
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
        },
    )


def _with_date_counts(provenance: Provenance, run: PreparedRun, date_counts: Any) -> Provenance:
    """Each date's own classes beside the fused ones (on the model grid)."""
    scenes = (run.scene, *(d.scene for d in run.dates))
    per_date = [
        {"scene": s.path, **{c.name: int(n[c.id]) for c in run.classes}}
        for s, n in zip(scenes, date_counts, strict=True)
    ]
    return dataclasses.replace(
        provenance, parameters={**provenance.parameters, "date_class_pixels": per_date}
    )


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
    with ClassRasterWriter(classes, run.scene.crs, grid, run.classes, provenance) as writer:
        warp_to_scene(classified.classes, run.scene, run.bands, writer, mask=not run.dates)
    confidence = confidence_counts = None
    if classified.confidence is not None and paths.confidence is not None:
        confidence = outputs.reserve(paths.confidence, "scene")
        with ConfidenceRasterWriter(
            confidence, run.scene.crs, grid, provenance
        ) as confidence_writer:
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
    width, height = run.scene.width, run.scene.height
    workers = effective_workers(options.vectorize_workers, width, height, VECTORIZE_BLOCK_SIZE)
    if gpkg is None or run.resampled or workers < 2:
        return None
    classes = run.classes
    settings = dataclasses.replace(options.vectorize_options(VECTORIZE_BLOCK_SIZE), workers=workers)

    def vectorize(read: BlockReader) -> VectorizeResult:
        return vectorize_blocks(
            read,
            width,
            height,
            run.grid.transform,
            run.scene.crs,
            gpkg,
            classes=classes,
            allowed_ids=frozenset(c.id for c in classes),
            source=source,
            colormap=None,
            provenance=provenance,
            options=settings,
            overwrite=True,
            started=time.perf_counter(),
            background=True,
            fields=run.fields(),
        )

    return BackgroundVectorizer(height, VECTORIZE_BLOCK_SIZE, vectorize)


def _classify(
    run: PreparedRun,
    device: Any,
    outputs: OutputSet,
    paths: OutputPaths,
    provenance: str,
    options: PredictOptions,
    progress: ProgressCallback | None,
    vectorizer: BackgroundVectorizer[VectorizeResult] | None = None,
) -> Classified:
    """Stream the tiles of ``run`` through the model into a class raster on the model's grid.

    With ``paths.confidence``, each pixel's confidence
    (:meth:`Predictor.classify_with_confidence`) goes to a second raster, stitched the same way.
    Both are temporaries of ``outputs`` (the confidence raster is the output itself unless the
    run is resampled).

    Strips are decoded one ahead in a background thread and finished rows are written behind,
    so on a GPU the device never waits for the disk. Batches span tile rows, so every forward
    pass is full; a row is written as soon as its last tile is classified (and handed to the
    background ``vectorizer``, if any).
    """
    predictor = Predictor(
        run.model,
        run.transform,
        device,
        compile=options.compile,
        precision=options.precision,
        legend=run.legend,
        tta=options.tta,
    )
    path = outputs.scratch(paths.anchor, "classes")
    confidence_path = None
    if paths.confidence is not None:
        confidence_path = (
            outputs.scratch(paths.confidence, "confidence")
            if run.resampled
            else outputs.reserve(paths.confidence, "confidence")
        )
    plan = run.plan
    multiple = predictor.size_multiple
    shape = chip_shape(plan.height, plan.width, plan.tile_size, multiple)
    origin = grid_origin(run.grid.transform)

    def before(tile: Tile) -> tuple[int, int]:
        # rows and columns that put the tile's first pixel on the absolute grid of `multiple`
        if multiple <= 1:
            return (0, 0)
        return ((origin[0] + tile.rows.start) % multiple, (origin[1] + tile.cols.start) % multiple)

    batch_size = options.batch_size or predictor.auto_batch_size(shape)
    # one predictor per date (the first is the scene itself), sharing the network
    predictors = [predictor, *(predictor.with_transform(d.transform) for d in run.dates)]
    date_counts = np.zeros((len(predictors), 256), dtype=np.int64)
    tiles_by_row = [[t for t in plan if t.row == i] for i in range(len(plan.row_spans))]
    pending: list[tuple[Tile, list[Chips]]] = []
    finished: dict[tuple[int, int], np.ndarray] = {}
    finished_confidence: dict[tuple[int, int], np.ndarray] = {}
    # the majority filter holds back a few rows until the rows below them are known
    smoother = StreamingMajority(options.smooth, plan.height) if options.smooth else None
    confidence_writer: ConfidenceRasterWriter | None = None
    next_row = 0
    done = 0
    wait_s = model_s = 0.0
    with contextlib.ExitStack() as stack:
        readers = [
            stack.enter_context(SceneReader(run.scene, run.bands, run.grid)),
            *(
                stack.enter_context(
                    SceneReader(d.scene, d.bands.indexes, run.grid, crs=run.scene.crs)
                )
                for d in run.dates
            ),
        ]
        writer = stack.enter_context(
            ClassRasterWriter(path, run.scene.crs, run.grid, run.classes, provenance)
        )
        write_behind = stack.enter_context(WriteBehind(writer.write, depth=2))
        if confidence_path is not None:
            confidence_writer = stack.enter_context(
                ConfidenceRasterWriter(confidence_path, run.scene.crs, run.grid, provenance)
            )
        strips = [
            stack.enter_context(contextlib.closing(_strips(r, plan, options.prefetch)))
            for r in readers
        ]
        last_row = len(tiles_by_row) - 1
        for i in range(len(tiles_by_row)):
            t0 = time.perf_counter()
            row_strips = [next(s) for s in strips]
            wait_s += time.perf_counter() - t0
            for t in tiles_by_row[i]:
                chips = [
                    Chips(*_chip(strip.data, strip.valid, t.cols, shape, before(t)))
                    for strip in row_strips
                ]
                pending.append((t, chips))
            del row_strips  # only the chips are needed now: not kept while the next is decoded
            while len(pending) >= batch_size or (i == last_row and pending):
                group, pending = pending[:batch_size], pending[batch_size:]
                t0 = time.perf_counter()
                confidence = None
                if len(predictors) == 1 and confidence_writer is None:
                    classes = predictor.classify(_stack([chips[0] for _, chips in group]))
                elif len(predictors) == 1:
                    classes, confidence = predictor.classify_with_confidence(
                        _stack([chips[0] for _, chips in group])
                    )
                else:
                    batches = [
                        _stack([chips[d] for _, chips in group]) for d in range(len(predictors))
                    ]
                    classes, singles, confidence = predictor.fuse(
                        list(zip(predictors, batches, strict=True))
                    )
                    for d, single in enumerate(singles):
                        for (t, _), ids in zip(group, single, strict=True):
                            core = core_patch(t, _unpad(ids, t, before(t))).data
                            date_counts[d] += np.bincount(core.ravel(), minlength=256)
                model_s += time.perf_counter() - t0
                finished.update(
                    {
                        (t.row, t.col): _unpad(c, t, before(t))
                        for (t, _), c in zip(group, classes, strict=True)
                    }
                )
                if confidence_writer is not None and confidence is not None:
                    finished_confidence.update(
                        {
                            (t.row, t.col): _unpad(c, t, before(t))
                            for (t, _), c in zip(group, confidence, strict=True)
                        }
                    )
            release_free_heap()  # a strip's worth of freed arrays goes back, so RSS stays flat
            while next_row <= i and all((t.row, t.col) in finished for t in tiles_by_row[next_row]):
                row_tiles = tiles_by_row[next_row]
                patches = [core_patch(t, finished.pop((t.row, t.col))) for t in row_tiles]
                row = join_row(patches, plan.width)
                for final in smoother.push(row) if smoother is not None else [row]:
                    write_behind.submit(final)
                    if vectorizer is not None:
                        vectorizer.add_rows(final.rows.start, final.data)
                if confidence_writer is not None:
                    confidence_writer.write(
                        join_row(
                            [
                                core_patch(t, finished_confidence.pop((t.row, t.col)))
                                for t in row_tiles
                            ],
                            plan.width,
                        )
                    )
                done += len(row_tiles)
                next_row += 1
                if progress is not None:
                    progress(done, len(plan))
    timings = {
        "read": sum(r.busy_seconds for r in readers),
        "read_wait": wait_s,
        "model": model_s,
        "write_classes": writer.busy_seconds,
    }
    confidence_counts = None
    if confidence_writer is not None:
        timings["write_confidence"] = confidence_writer.busy_seconds
        confidence_counts = confidence_writer.counts
    return Classified(path, confidence_path, writer.counts, date_counts, confidence_counts, timings)


def _strips(reader: SceneReader, plan: TilePlan, prefetch: bool) -> Generator[Strip, None, None]:
    # a generator, so closing it (before the reader closes) stops the read-ahead thread first
    yield from read_ahead(reader.strips(plan), depth=1) if prefetch else reader.strips(plan)


def _stack(chips: list[Chips]) -> Chips:
    return Chips(np.concatenate([c.data for c in chips]), np.concatenate([c.valid for c in chips]))


def _unpad(classes: np.ndarray, tile: Tile, before: tuple[int, int]) -> np.ndarray:
    """The part of a classified chip that is the tile's own pixels."""
    top, left = before
    return classes[top : top + tile.rows.size, left : left + tile.cols.size]


def _chip(
    data: Any, valid: Any, cols: Span, shape: tuple[int, int], before: tuple[int, int]
) -> tuple[Any, Any]:
    window = slice(cols.start, cols.stop)
    chip, mask = pad_chip(data[:, :, window], valid[:, window], shape, before)
    # copies, so a pending chip does not keep its whole strip alive
    return np.ascontiguousarray(chip)[None], np.ascontiguousarray(mask)[None]


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
