"""Evaluating a model on a labelled scene, with the tiling and normalization of prediction.

:func:`geoseg.inference.classify_normalized` runs prediction's own tiling on an in-memory image,
so validation during training needs no files and scores what ``predict`` delivers.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseg.errors import BandMappingError, LabelError
from geoseg.io.labels import IGNORE
from geoseg.io.output_set import check_not_inputs
from geoseg.io.report_files import write_json
from geoseg.training.metrics import ConfusionMatrix, SegmentationMetrics

if TYPE_CHECKING:
    from geoseg.config import PredictOptions
    from geoseg.io.scene import Scene
    from geoseg.models.card import ClassInfo, Legend
    from geoseg.models.loading import LoadedModel

log = logging.getLogger(__name__)


def check_result_path(
    path: str | Path | None, model: str | Path | None, scene: str | Path, labels: str | Path
) -> None:
    """Refuse a result file that is the scene, the labels or the model file being evaluated.

    A model given by a name without a suffix is an embedded one, not a file of the user's.

    Raises
    ------
    ConfigError
        If ``path`` is one of those inputs.
    """
    if path is None:
        return
    model_file = (model,) if model is not None and Path(model).suffix else ()
    check_not_inputs([Path(path)], (scene, labels, *model_file))


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Parameters
    ----------
    metrics : SegmentationMetrics
        Metrics over the evaluated pixels.
    model : str
        The model evaluated (name or path).
    scene : str
        The image evaluated on.
    labels : str
        The reference labels.
    window : tuple of int or None
        ``(row_start, row_stop, col_start, col_stop)`` evaluated, ``None`` for the whole scene.
    """

    metrics: SegmentationMetrics
    model: str
    scene: str
    labels: str
    window: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "model": self.model,
            "scene": self.scene,
            "labels": self.labels,
            "window": list(self.window) if self.window else None,
            **self.metrics.to_dict(),
        }

    def table(self) -> str:
        """What was evaluated, then the metrics as a text table."""
        where = "whole scene"
        if self.window is not None:
            r0, r1, c0, c1 = self.window
            where = f"rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}"
        head = f"model {self.model} on {self.scene} ({where}) against {self.labels}"
        return head + "\n" + self.metrics.format_table()

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, replacing an older result but never an input.

        Raises
        ------
        ConfigError
            If ``path`` is the scene, the labels or the model file evaluated.
        """
        check_result_path(path, self.model, self.scene, self.labels)
        write_json(Path(path), self.to_dict(), overwrite=True)


def evaluate(
    model: str | Path | None,
    scene: str | Path,
    labels: str | Path,
    label_map: Mapping[str, Any] | None = None,
    label_column: str | None = None,
    bands: tuple[str, ...] | None = None,
    rows: tuple[int, int] | None = None,
    cols: tuple[int, int] | None = None,
    device: str = "cpu",
    options: Any = None,
) -> EvaluationResult:
    """Evaluate a model on a scene against reference labels, in the classes it delivers.

    Parameters
    ----------
    model : str or Path or None
        Embedded model name or model file; ``None`` picks the embedded model that fits the
        scene, as ``predict`` does.
    scene : str or Path
        The image; its bands are matched to the model's as prediction does.
    labels : str or Path
        Class raster or vector file on (or reprojectable to) the scene.
    label_map : mapping, optional
        Reference label value to class name/id or ``ignore`` (e.g. a legend with other codes);
        default: raster values are class ids, polygon classes are class names. The classes are
        those of the legend evaluated (``options.legend``, else the model's default legend).
    label_column : str, optional
        Class attribute of vector labels.
    bands : tuple of str, optional
        Scene bands feeding the model's bands (1-based indexes or descriptions).
    rows, cols : tuple of int, optional
        Half-open pixel window to score (e.g. a held-out area); default the whole scene.
    device : str
        ``cpu``, ``cuda`` or ``auto``.
    options : PredictOptions, optional
        Every prediction setting (product, scale, legend, bands, device ...); ``bands`` and
        ``device`` above are used when it is not given.

    Notes
    -----
    The prediction is made by :func:`geoseg.pipeline.predict` on the part of the scene that
    holds labels (their bounding box and 64 pixels of context around it), so the scores are
    those of what users get (reflectance, resampling, tiling) and a few polygons on a large
    scene cost a few tiles. Label pixels are compared on the scene's own grid.

    Raises
    ------
    LabelError
        If the labels do not overlap the scene, the class column is missing or nothing is
        labelled.
    BandMappingError
        If the scene lacks a band the model needs.
    """
    from geoseg.bands import resolve_bands
    from geoseg.config import PredictOptions
    from geoseg.io.scene import open_scene, read_sample
    from geoseg.models.loading import choose_default_model, load_model
    from geoseg.radiometry import RadiometryRequest, assume_from_sample, resolve_radiometry

    if options is None:
        options = PredictOptions(bands=bands, device=device)
    info = open_scene(scene)
    if model is None:
        requested = len(options.bands) if options.bands else None
        choice = choose_default_model(
            info.descriptions, info.colors, info.sensor, requested, info.gsd
        )
        log.info("using embedded model %s (%s)", choice.name, choice.why)
        model = choice.name
    loaded = load_model(model)
    card = loaded.card
    legend = card.legend(options.legend)
    band_indexes = resolve_bands(
        card.bands, info.descriptions, options.bands, info.colors, info.sensor
    ).indexes
    sample, valid = read_sample(info, band_indexes)
    described = info.radiometric_info()
    radiometry = assume_from_sample(
        resolve_radiometry(described, band_indexes, card.bands, options.radiometry),
        sample,
        valid,
        card.bands,
        described,
    )
    reference, window = _reference(scene, labels, label_map, label_column, legend, rows, cols)
    box = _labelled_box(reference, info.height, info.width, labels)
    # the very prediction `geoseg predict` makes, on the labelled part of the scene: the same
    # bands and reflectance as the whole scene (the copy has no MTL beside it)
    settings = dataclasses.replace(
        options,
        bands=tuple(str(b) for b in band_indexes),
        radiometry=RadiometryRequest(
            scale=radiometry.scale,
            offset=radiometry.offset,
            source=radiometry.source,
            surface=radiometry.surface,
        ),
    )
    predicted = _predicted_channels(
        info, box, loaded, settings, legend.classes, reference.shape, named=options.bands is None
    )
    matrix = ConfusionMatrix(len(legend.classes))
    matrix.update(reference, predicted)
    metrics = SegmentationMetrics.from_confusion(matrix, [c.name for c in legend.classes])
    return EvaluationResult(metrics, loaded.source, str(scene), str(labels), window)


def _reference(
    scene: str | Path,
    labels: str | Path,
    label_map: Mapping[str, Any] | None,
    label_column: str | None,
    legend: Legend,
    rows: tuple[int, int] | None,
    cols: tuple[int, int] | None,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The labels on the scene's grid as legend channels, :data:`IGNORE` outside the window.

    Returns
    -------
    reference : np.ndarray
        ``(H, W)`` channel indexes of ``legend``.
    window : tuple of int or None
        ``(row_start, row_stop, col_start, col_stop)``, ``None`` without ``rows`` and ``cols``.

    Raises
    ------
    LabelError, ConfigError
        As :func:`geoseg.training.prepare.read_labels`, naming the command's flags.
    """
    from geoseg.errors import ConfigError
    from geoseg.io.labels import grid_of
    from geoseg.training.config import HoldoutConfig, SceneConfig
    from geoseg.training.prepare import holdout_slices, read_labels

    spec = SceneConfig(
        name=Path(scene).stem,
        image=str(scene),
        labels=str(labels),
        label_column=label_column,
        label_map=dict(label_map or {}),
    )
    try:
        reference, _ = read_labels(spec, grid_of(scene), legend.classes)
    except (LabelError, ConfigError) as exc:
        # the check serves recipes too: name the command's flags, not the recipe's keys
        text = (
            str(exc).replace("label_column", "--label-column").replace("label_map", "--label-map")
        )
        raise type(exc)(text) from exc
    window = None
    if rows or cols:
        r, c = holdout_slices(HoldoutConfig(rows=rows, cols=cols), reference.shape)
        masked = np.full_like(reference, IGNORE)
        masked[r, c] = reference[r, c]
        reference = masked
        window = (int(r.start), int(r.stop), int(c.start), int(c.stop))
    return reference, window


def _labelled_box(
    reference: np.ndarray, height: int, width: int, labels: str | Path
) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: the labelled pixels' bounding box and 64 pixels of context.

    Raises
    ------
    LabelError
        If no pixel is labelled.
    """
    labelled = np.argwhere(reference != IGNORE)
    if labelled.size == 0:
        raise LabelError(f"labels {labels} have no labelled pixel in the evaluated window")
    context = 64
    (r0, c0), (r1, c1) = labelled.min(axis=0), labelled.max(axis=0) + 1
    r0, c0 = max(int(r0) - context, 0), max(int(c0) - context, 0)
    r1, c1 = min(int(r1) + context, height), min(int(c1) + context, width)
    return r0, r1, c0, c1


def _predicted_channels(
    info: Scene,
    box: tuple[int, int, int, int],
    loaded: LoadedModel,
    settings: PredictOptions,
    classes: Sequence[ClassInfo],
    shape: tuple[int, ...],
    named: bool = False,
) -> np.ndarray:
    """``predict``'s classes on the ``box`` of the scene, as channels of ``classes``.

    Pixels outside the box, or without a class, hold 255 (out of every channel's range).
    ``settings.bands`` are the scene's bands as indexes; with ``named`` (the user gave no
    ``--bands``) the copy's own names are used where they give the same bands, so that the run
    says how the bands were matched as ``predict`` on the scene would.
    """
    from geoseg.bands import resolve_bands
    from geoseg.io.labels import read_raster
    from geoseg.io.scene import copy_window, open_scene
    from geoseg.pipeline import predict

    r0, r1, c0, c1 = box
    with tempfile.TemporaryDirectory(prefix="geoseg-evaluate-") as tmp:
        part = copy_window(info, box, Path(tmp) / "part.tif")
        if named and settings.bands is not None:
            copy = open_scene(part)
            try:
                by_names = resolve_bands(
                    loaded.card.bands, copy.descriptions, None, copy.colors, copy.sensor
                ).indexes
            except BandMappingError:
                by_names = ()
            if by_names == tuple(int(b) for b in settings.bands):
                settings = dataclasses.replace(settings, bands=None)
        raster = Path(tmp) / "classes.tif"
        predict(part, None, model=loaded, raster=raster, options=settings)
        predicted_ids = read_raster(raster, (1,))[0][0]
    # class raster holds class ids; metrics count channel indexes (nodata stays out of range)
    to_channel = np.full(256, 255, dtype=np.int64)
    for channel, info_class in enumerate(classes):
        to_channel[info_class.id] = channel
    predicted = np.full(shape, 255, dtype=np.int64)
    predicted[r0:r1, c0:c1] = to_channel[predicted_ids.astype(np.int64)]
    return predicted
