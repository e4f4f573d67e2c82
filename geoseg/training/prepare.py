"""Turn a configured scene into aligned training arrays: reflectance, labels, teacher targets.

Stored values become reflectance exactly as prediction does
(:func:`geoseg.radiometry.resolve_radiometry` on what the scene says, or the recipe's
``product``/``scale``), and the model's fixed normalization is applied per patch after
augmentation, so augmentation acts in physical units (gain, offset, haze) and a model sees at
training time what ``geoseg predict`` gives it.

With a teacher (``teacher:`` in the recipe), the teacher model is run over each whole scene on its
own bands, and its class probabilities become the soft targets (and its most probable class the
label where the scene has no labels of its own).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.bands import resolve_bands
from geoseg.core import Grid
from geoseg.errors import ConfigError, LabelError, ModelError
from geoseg.io.array_cache import file_identity, read_array_cache, write_array_cache
from geoseg.io.labels import (
    IGNORE,
    grid_of,
    is_vector,
    label_column_of,
    rasterize_polygons,
    read_class_raster,
    read_probabilities,
    read_raster,
    resample_raster,
    stack_bands,
)
from geoseg.io.scene import Scene, open_scene
from geoseg.models.card import ClassInfo
from geoseg.models.loading import LoadedModel
from geoseg.normalization import InputTransform
from geoseg.radiometry import (
    Radiometry,
    assume_from_sample,
    resolve_radiometry,
    to_model_level,
)
from geoseg.snow_check import DESCRIPTION as SNOW_DESCRIPTION
from geoseg.snow_check import SnowCheck
from geoseg.training.config import HoldoutConfig, SceneConfig

log = logging.getLogger(__name__)

DYNAMIC_WORLD_CLASSES = (
    "water",
    "trees",
    "grass",
    "flooded_vegetation",
    "crops",
    "shrub_and_scrub",
    "built",
    "bare",
    "snow_and_ice",
)
"""Dynamic World v1 label values 0-8, in order (the teacher of the embedded models)."""

DYNAMIC_WORLD_TO_LANDCOVER: dict[str, str] = {
    "0": "water",
    "1": "forest",
    "2": "farmland",
    "3": "other",
    "4": "farmland",
    "5": "other",
    "6": "urban",
    "7": "other",
    # haze and thin cloud come out as snow_and_ice in the teacher: never learn them
    "8": "ignore",
}
"""How Dynamic World labels map onto :data:`geoseg.models.card.LANDCOVER_CLASSES`."""


@dataclass(frozen=True)
class SceneData:
    """One scene as aligned arrays, ready for patch sampling and validation.

    Parameters
    ----------
    name : str
        Scene name.
    image : np.ndarray
        ``(bands, H, W)`` float32 reflectance of the model's bands, 0 at invalid pixels; the
        model's normalization is applied per patch, after radiometric augmentation.
    labels : np.ndarray
        ``(H, W)`` int64 class channel index, :data:`IGNORE` where unlabelled or invalid.
    soft : np.ndarray or None
        ``(classes, H, W)`` float32 teacher probabilities grouped into the model's classes.
    radiometry : Radiometry
        How the scene's values became reflectance (for the record).
    holdout : tuple of slice or None
        ``(rows, cols)`` of the validation window.
    train : bool
        Whether pixels outside the holdout are trained on.
    weight : float
        Relative sampling weight.
    image_path : str
        The (stacked) image file, as prediction would read it.
    grid : Grid
        The scene's grid.
    teacher_sample : np.ndarray or None
        ``(teacher bands, N)`` model input of the teacher at up to 20,000 valid pixels (fits the
        input layer of a student that drops some of the teacher's bands).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    soft: np.ndarray | None
    radiometry: Radiometry
    holdout: tuple[slice, slice] | None
    train: bool
    weight: float
    image_path: str
    grid: Grid
    teacher_sample: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    def train_mask(self) -> np.ndarray:
        """Boolean ``(H, W)``: pixels that may be used for training (outside the holdout)."""
        mask = np.full(self.shape, self.train, dtype=bool)
        if self.holdout is not None:
            mask[self.holdout] = False
        return mask


def holdout_slices(holdout: HoldoutConfig | None, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Turn a holdout config into ``(rows, cols)`` slices clamped to ``shape``.

    Raises
    ------
    ConfigError
        If a range is empty or outside the scene.
    """
    if holdout is None:
        return (slice(0, shape[0]), slice(0, shape[1]))
    out = []
    for what, span, size in (("rows", holdout.rows, shape[0]), ("cols", holdout.cols, shape[1])):
        start, stop = span if span is not None else (0, size)
        if not 0 <= start < stop or start >= size:
            raise ConfigError(f"holdout {what} {span} is empty or outside the scene (0-{size})")
        out.append(slice(start, min(stop, size)))
    return (out[0], out[1])


def class_lookup(
    label_map: Mapping[str, Any], classes: Sequence[ClassInfo], values: Sequence[str]
) -> dict[str, int]:
    """Map each label value (as text) to a model channel index or :data:`IGNORE`.

    Parameters
    ----------
    label_map : mapping
        Label value to class name, class id, or ``"ignore"``; empty means identity (raster values
        are class ids, polygon classes are class names).
    classes : sequence of ClassInfo
        The model's classes, in channel order.
    values : sequence of str
        The label values that occur (used for the identity map and the error message).

    Raises
    ------
    LabelError
        If a value maps to no model class.
    """
    by_name = {c.name: i for i, c in enumerate(classes)}
    by_id = {c.id: i for i, c in enumerate(classes)}
    names = ", ".join(by_name)

    def target(value: str, to: Any) -> int:
        if isinstance(to, str) and to.strip().lower() == "ignore":
            return IGNORE
        if isinstance(to, str) and to in by_name:
            return by_name[to]
        if isinstance(to, int) and not isinstance(to, bool) and to in by_id:
            return by_id[to]
        if isinstance(to, int) and to == IGNORE:
            return IGNORE
        raise LabelError(
            f"label {value!r} maps to {to!r}, which is no model class (classes: {names}); "
            "use a class name or 'ignore' in label_map"
        )

    if label_map:
        lookup = {str(k): target(str(k), v) for k, v in label_map.items()}
        return lookup
    lookup = {}
    for value in values:
        if value in by_name:
            lookup[value] = by_name[value]
        elif value.isdigit() and int(value) in by_id:
            lookup[value] = by_id[int(value)]
        elif value == str(IGNORE):
            lookup[value] = IGNORE
        else:
            raise LabelError(
                f"label {value!r} is no model class (classes: {names}): give a label_map"
            )
    return lookup


def _map_codes(codes: np.ndarray, values: Sequence[str], lookup: Mapping[str, int]) -> np.ndarray:
    """Map integer codes (index into ``values``) through ``lookup``; unknown codes are ignored."""
    table = np.full(256, IGNORE, dtype=np.int64)
    for code, value in enumerate(values):
        if code < 256:
            table[code] = lookup.get(value, IGNORE)
    out: np.ndarray = table[np.clip(codes, 0, 255)]
    return out


def group_probabilities(
    probs: np.ndarray, lookup: Mapping[str, int], num_classes: int
) -> np.ndarray:
    """Sum teacher probability bands into model classes and renormalize.

    Band ``i`` holds the probability of label value ``i``; bands that map to :data:`IGNORE` are
    dropped, and the remaining mass is rescaled to sum to one (0 where nothing is left).
    """
    out = np.zeros((num_classes, *probs.shape[1:]), dtype=np.float32)
    for band in range(probs.shape[0]):
        target = lookup.get(str(band), IGNORE)
        if target != IGNORE:
            out[target] += probs[band]
    total = out.sum(axis=0, keepdims=True)
    np.divide(out, total, out=out, where=total > 1e-6)
    return out


def prepare_scene(
    scene: SceneConfig,
    model_bands: tuple[str, ...],
    classes: Sequence[ClassInfo],
    work_dir: Path,
    resolve: Any = Path,
    teacher: LoadedModel | None = None,
    gsd: float | None = None,
    reflectance_level: str = "any",
) -> SceneData:
    """Read, stack, convert to reflectance and label one configured scene.

    Parameters
    ----------
    scene : SceneConfig
        The scene's configuration.
    model_bands : tuple of str
        The model's input bands (common names).
    classes : sequence of ClassInfo
        The model's classes.
    work_dir : Path
        Where a stack of per-band files is written (reused if present).
    resolve : callable
        Turns a config path into a :class:`~pathlib.Path` (resolves relative paths).
    teacher : LoadedModel, optional
        A model whose class probabilities on the scene are the soft targets.
    gsd : float, optional
        The model's pixel size: a scene whose pixels differ from it by more than 25% is
        resampled to it (nearest neighbour, written once to ``work_dir``), as prediction
        resamples it.
    reflectance_level : {"any", "toa"}
        The model card's: surface reflectance gets a typical path reflectance for a ``toa``
        model, as in prediction.

    Raises
    ------
    BandMappingError
        If the image lacks a band the model (or the teacher) needs.
    LabelError
        If the labels do not overlap the image, a class column is missing, or no pixel of the
        scene is labelled.
    """
    image_path, info = _scene_file(scene, model_bands, work_dir, resolve, teacher, gsd)
    requested = scene.bands or None
    if scene.band_files and teacher is None:
        requested = tuple(str(i + 1) for i in range(len(model_bands)))
    band_indexes = resolve_bands(
        model_bands, info.descriptions, requested, info.colors, info.sensor
    ).indexes
    grid = grid_of(image_path)
    raw, valid = read_raster(image_path, band_indexes)
    described = info.radiometric_info()
    declared = resolve_radiometry(described, band_indexes, model_bands, scene.radiometry())
    radiometry = to_model_level(
        assume_from_sample(declared, raw, valid, model_bands, described),
        model_bands,
        reflectance_level,
    )
    image = _reflectance(raw, radiometry)
    image[:, ~valid] = 0.0
    del raw

    soft = None
    teacher_sample = None
    if teacher is not None:
        soft, teacher_valid, teacher_sample = _cached_teacher_targets(
            teacher, image_path, info, scene, classes, work_dir
        )
        valid &= teacher_valid
    labels, soft = _labels_and_soft(scene, grid, classes, resolve, valid, soft)
    holdout = holdout_slices(scene.holdout, labels.shape) if scene.holdout is not None else None
    counts = np.bincount(labels[labels != IGNORE], minlength=len(classes))
    log.info(
        "scene %s: %dx%d px, reflectance from %s, labelled %s",
        scene.name,
        labels.shape[1],
        labels.shape[0],
        radiometry.source,
        ", ".join(f"{c.name} {n}" for c, n in zip(classes, counts.tolist(), strict=False)),
    )
    return SceneData(
        name=scene.name,
        image=image,
        labels=labels,
        soft=soft,
        radiometry=radiometry,
        holdout=holdout,
        train=scene.train,
        weight=scene.weight,
        image_path=str(image_path),
        grid=grid,
        teacher_sample=teacher_sample,
    )


def _scene_file(
    scene: SceneConfig,
    model_bands: tuple[str, ...],
    work_dir: Path,
    resolve: Any,
    teacher: LoadedModel | None,
    gsd: float | None,
) -> tuple[Path, Scene]:
    """The image file to read a scene from, and what the scene's own file says about itself.

    The file is the scene's image, or its ``band_files`` stacked into one (in the teacher's
    bands when there is a teacher, which reads them too), resampled to the model's pixel size
    ``gsd`` where it differs by more than 25%; stack and resampled copy are written once to
    ``work_dir``.

    Returns
    -------
    image_path : Path
        The file to read.
    info : Scene
        :func:`geoseg.io.scene.open_scene` of the file before resampling.

    Raises
    ------
    ConfigError
        If ``band_files`` has not one file per band.
    """
    stack_bands_of = teacher.card.bands if teacher is not None else model_bands
    if scene.band_files:
        if len(scene.band_files) != len(stack_bands_of):
            raise ConfigError(
                f"scene {scene.name!r}: {len(scene.band_files)} band_files for "
                f"{len(stack_bands_of)} bands ({', '.join(stack_bands_of)})"
            )
        image_path = work_dir / f"{scene.name}-stack.tif"
        if not image_path.exists():
            work_dir.mkdir(parents=True, exist_ok=True)
            log.info(
                "stacking %d band files of %s into %s", len(stack_bands_of), scene.name, image_path
            )
            stack_bands([(resolve(p), 1) for p in scene.band_files], image_path, stack_bands_of)
    else:
        image_path = resolve(scene.image)
    # what the values are is read from the file as given (its name, tags and the metadata files
    # beside it, such as a Landsat MTL), never from the resampled copy, which has none of them:
    # training and prediction turn the same scene into the same reflectance
    info = open_scene(image_path)
    if gsd is not None and not 0.8 <= gsd / info.gsd <= 1.25:
        resampled = work_dir / f"{scene.name}-{gsd:g}m.tif"
        if not resampled.exists():
            work_dir.mkdir(parents=True, exist_ok=True)
            log.info("resampling %s from %.3g m to %g m pixels", scene.name, info.gsd, gsd)
            resample_raster(image_path, resampled, gsd / info.gsd)
        image_path = resampled
    return image_path, info


def _labels_and_soft(
    scene: SceneConfig,
    grid: Grid,
    classes: Sequence[ClassInfo],
    resolve: Any,
    valid: np.ndarray,
    soft: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A scene's labels (:data:`IGNORE` where ``valid`` is not) and soft targets.

    The labels are the scene's own, else the most probable class of the teacher's targets
    ``soft``; without a teacher, the soft targets are the scene's ``probabilities`` file, if any.

    Raises
    ------
    LabelError
        If no valid pixel is labelled with a model class.
    """
    if scene.labels:
        labels, lookup = read_labels(scene, grid, classes, resolve)
    else:
        assert soft is not None  # a recipe without labels has a teacher (checked on load)
        labels = soft.argmax(axis=0).astype(np.int64)
        lookup = {}
    labels[~valid] = IGNORE
    if not np.any(labels != IGNORE):
        raise LabelError(f"scene {scene.name!r}: no pixel is labelled with a model class")

    if soft is None and scene.probabilities:
        probs = read_probabilities(resolve(scene.probabilities), grid)
        soft = group_probabilities(probs, lookup, len(classes))
    return labels, soft


def _reflectance(raw: np.ndarray, radiometry: Radiometry) -> np.ndarray:
    scale = np.asarray(radiometry.scale, dtype=np.float32).reshape(-1, 1, 1)
    offset = np.asarray(radiometry.offset, dtype=np.float32).reshape(-1, 1, 1)
    out: np.ndarray = raw.astype(np.float32) * scale + offset
    return out


def _cached_teacher_targets(
    teacher: LoadedModel,
    image_path: Path,
    info: Any,
    scene: SceneConfig,
    classes: Sequence[ClassInfo],
    work_dir: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_teacher_targets`, kept in ``work_dir`` for the next run of the same recipe.

    The cache is valid for the same teacher file, image file and radiometric settings only.
    """
    key = {
        "teacher": teacher.sha256,
        "image": file_identity(image_path),
        "radiometry": repr(scene.radiometry()),
        "classes": [c.name for c in classes],
        "snow_check": SNOW_DESCRIPTION,
    }
    cache = work_dir / f"{scene.name}-teacher.npz"
    cached = read_array_cache(cache, key)
    if cached is not None:
        log.info("teacher targets of %s from %s", scene.name, cache)
        return cached["soft"], cached["valid"], cached["sample"]
    soft, valid, sample = _teacher_targets(teacher, image_path, info, scene, classes)
    write_array_cache(cache, key, {"soft": soft, "valid": valid, "sample": sample})
    return soft, valid, sample


def _teacher_targets(
    teacher: LoadedModel,
    image_path: Path,
    info: Any,
    scene: SceneConfig,
    classes: Sequence[ClassInfo],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teacher's class probabilities over a scene, where it is valid, and an input sample."""
    import torch

    from geoseg.inference import probabilities_normalized, tile_multiple

    card = teacher.card
    if [c.name for c in card.classes] != [c.name for c in classes]:
        raise ModelError(
            f"teacher {card.name!r} predicts {[c.name for c in card.classes]}, the student "
            f"{[c.name for c in classes]}: they must have the same classes"
        )
    bands = resolve_bands(card.bands, info.descriptions, None, info.colors, info.sensor).indexes
    raw, valid = read_raster(image_path, bands)
    described = info.radiometric_info()
    declared = resolve_radiometry(described, bands, card.bands, scene.radiometry())
    radiometry = to_model_level(
        assume_from_sample(declared, raw, valid, card.bands, described),
        card.bands,
        card.reflectance_level,
    )
    transform = InputTransform(radiometry, card.normalization)
    inputs = transform.apply(raw)
    snow_check = SnowCheck.for_card(card)
    test_reflectance = None
    if snow_check is not None:
        # the teacher's snow is ruled out where the ground cannot be snow, as prediction does
        picked = torch.from_numpy(raw[None, list(snow_check.bands)].astype(np.float32))
        test_reflectance = transform.reflectance_torch(picked, snow_check.bands)[0].numpy()
    del raw
    inputs[:, ~valid] = 0.0
    probabilities = probabilities_normalized(
        teacher.network,
        inputs,
        card.tile_size,
        card.overlap,
        tile_multiple(card),
        torch.device("cpu"),
        snow_check=snow_check,
        reflectance=test_reflectance,
    )
    probabilities[:, ~valid] = 0.0
    rng = np.random.default_rng(0)
    where = np.flatnonzero(valid)
    picks = rng.choice(where, min(20_000, where.size), replace=False) if where.size else where
    sample = inputs.reshape(inputs.shape[0], -1)[:, picks]
    return probabilities, valid, sample


def read_labels(
    scene: SceneConfig, grid: Grid, classes: Sequence[ClassInfo], resolve: Any = Path
) -> tuple[np.ndarray, dict[str, int]]:
    """Read a scene's labels onto ``grid`` as model channel indexes (:data:`IGNORE` elsewhere).

    Returns
    -------
    labels : np.ndarray
        ``(H, W)`` int64.
    lookup : dict
        Label value (text) to channel index, as resolved from ``scene.label_map``.

    Raises
    ------
    LabelError
        If the labels do not overlap the grid, the class column is missing or a label value maps
        to no class.
    """
    labels_path = resolve(scene.labels)
    if is_vector(labels_path):
        column = scene.label_column
        if not column:
            column = label_column_of(labels_path)
            log.info("labels: classes from column %r of %s", column, labels_path)
        codes, values = rasterize_polygons(labels_path, column, grid, where=scene.label_filter)
        present = values
    else:
        codes = read_class_raster(labels_path, grid)
        # a raster's codes are its values: the table covers them all, the lookup those present
        values = tuple(str(v) for v in range(256))
        present = tuple(str(v) for v in np.unique(codes).tolist() if v != IGNORE)
    lookup = class_lookup(scene.label_map, classes, present)
    return _map_codes(codes, values, lookup), lookup
