"""Everything a prediction run decides before its first tile is read: :func:`prepare`.

The scene (and any further dates) opened and checked, the model chosen and loaded, bands matched,
reflectance decided from the metadata and a sample, the grid the model runs on (the scene's own,
or resampled to the model's pixel size) and the tile plan on it. Every bad input fails here, with
one line, before any work; the result is a :class:`PreparedRun` that the later stages only read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.bands import BandMatch, repeated_bands, resolve_bands
from geoseg.config import TTA_MODES, PredictOptions
from geoseg.core import Grid
from geoseg.errors import BandMappingError, EmptySceneError, InvalidSceneError
from geoseg.inference import grid_origin, tile_multiple
from geoseg.io.cloud_mask import FLAGGED
from geoseg.io.scene import Scene, fill_pixels, fill_values, open_scene, read_sample
from geoseg.io.scene_reader import resampled_grid, scene_grid
from geoseg.models.card import GSD_TOLERANCE, ClassInfo, Legend, ModelCard
from geoseg.models.loading import LoadedModel, choose_default_model, load_model
from geoseg.normalization import InputTransform
from geoseg.radiometry import (
    Radiometry,
    assume_from_sample,
    resolve_radiometry,
    to_model_level,
)
from geoseg.snow_check import DESCRIPTION as SNOW_CHECK
from geoseg.snow_check import SnowCheck
from geoseg.tiling import TilePlan, plan_tiles

# the run's logger, whichever of its modules speaks: callers tune the run's chatter by that one
# name (``geoseg batch`` keeps it to warnings)
log = logging.getLogger("geoseg.pipeline")

# Resample when the scene's pixel size differs from the model's by more than GSD_TOLERANCE; never
# upsample by more than MAX_UPSAMPLING per side (finer pixels than that add cost, not information).
MAX_UPSAMPLING = 4.0


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
    is valid. ``owns_model`` says whether the model was loaded for this run alone (from a name
    or a file, not handed over loaded), so that inference may ready its network in place rather
    than beside a copy.
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
    owns_model: bool = False

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
            "model": self.model.chosen_because,
            "bands": self.band_match.describe(card.bands, self.scene.descriptions),
            "radiometry": self.radiometry.to_dict(),
            "legend": self.legend.name,
        }
        if SnowCheck.for_card(card) is not None:
            decided["snow_check"] = SNOW_CHECK
        for scene in (self.scene, *(d.scene for d in self.dates)):
            if scene.cloud_mask is not None:
                masks = decided.setdefault("cloud_masks", {})
                masks[scene.path] = scene.cloud_mask.describe()
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

    Parameters
    ----------
    scene_path : str or Path
        The scene (GeoTIFF or VRT).
    model : str or Path or LoadedModel or None
        Embedded model name, model file, or a loaded model; ``None`` picks the embedded model
        whose bands the scene has.
    options : PredictOptions
        The run's settings (bands, radiometry, legend, resampling, tiling).
    dates : tuple of str or Path
        Further scenes of the same place (any CRS or grid), read onto the first scene's grid
        and fused with it.

    Returns
    -------
    PreparedRun

    Raises
    ------
    GeosegError
        Any problem with the scene, the model, the bands or the options, before work starts.
    """
    scene = open_scene(scene_path)
    if model is None:
        requested = len(options.bands) if options.bands else None
        choice = choose_default_model(
            scene.descriptions, scene.colors, scene.sensor, requested, scene.gsd
        )
        log.info("using embedded model %s (%s)", choice.name, choice.why)
        loaded = replace(load_model(choice.name), chosen_because=choice.why)
    else:
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
    repeated = repeated_bands(match, card.bands, scene.descriptions, scene.colors, scene.sensor)
    if repeated:
        log.warning("%s", repeated)
    (log.warning if radiometry.assumed else log.info)("reflectance: %s", radiometry.source)
    if scene.cloud_mask is not None:
        log.info(
            "clouds: %s flagged in %s are nodata",
            FLAGGED[scene.cloud_mask.kind],
            scene.cloud_mask.describe(),
        )
    _check_sample(scene, sample, valid, radiometry)
    grid = _model_grid(scene, card, options)
    multiple = tile_multiple(loaded.card) * TTA_MODES[options.tta].grid_multiple
    tile_size = options.tile_size or card.tile_size
    tile_size = math.ceil(tile_size / multiple) * multiple
    overlap = card.overlap if options.overlap is None else options.overlap
    plan = plan_tiles(
        grid.height, grid.width, tile_size, overlap, grid_origin(grid.transform), multiple
    )
    others = tuple(_prepare_date(path, scene, loaded, options) for path in dates)
    # a model geoseg loaded for this run is the run's own: inference may ready it in place
    owns_model = not isinstance(model, LoadedModel)
    return PreparedRun(
        scene, loaded, bands, transform, grid, plan, match, legend, others, owns_model
    )


def _model_grid(scene: Scene, card: ModelCard, options: PredictOptions) -> Grid:
    """The grid the model runs on: the scene's, or resampled where its pixel size is far off."""
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
    return grid


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
    fill = fill_pixels(sample)
    if fill.any():
        share = 100.0 * float(fill.mean())
        first_band = sample[0][fill]
        found = [v for v in fill_values(sample.dtype) if (first_band == v).any()]
        said = " or ".join(f"{v:g}" for v in found) or "fill values"
        log.warning(
            "%.1f%% of the sampled pixels are %s in every band: treated as nodata (fill)%s",
            share,
            said,
            "" if scene.nodata is None else f", as well as the declared nodata {scene.nodata:g}",
        )
    if sample.dtype.kind == "f":
        # NaN and infinities are never predicted (valid_from); say so, as for fill
        not_finite = ~np.isfinite(sample).all(axis=0)
        if not_finite.any():
            log.warning(
                "%.1f%% of the sampled pixels are NaN or infinite in some band: treated as nodata",
                100.0 * float(not_finite.mean()),
            )
    scale = np.asarray(radiometry.scale, dtype=np.float64)[:, None]
    offset = np.asarray(radiometry.offset, dtype=np.float64)[:, None]
    # the median is only held against a wide range: up to about a million valid pixels do
    values = sample[:, valid]
    values = values[:, :: max(1, values.shape[1] // 500_000)]
    reflectance = values.astype(np.float64) * scale + offset
    median = float(np.median(reflectance)) if reflectance.size else 0.0
    # land and water reflectance lies between about 0.01 and 0.6: far outside, the scale is wrong
    if not -0.05 <= median <= 1.5:
        log.warning(
            "the scene's median reflectance comes out as %.3g with %s: if that is wrong, say "
            "what the values are with --product or --scale",
            median,
            radiometry.source,
        )
