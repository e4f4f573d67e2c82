"""Held-out validation during training: each scene's holdout, scored as prediction classifies it.

:func:`validate` classifies every scene whole with prediction's tiling and scores it inside its
held-out window, in the card's default legend; :func:`coarsened` shows the model a scene as a
coarser sensor would; :func:`card_metrics` is the summary of the scores that the model card keeps.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from geoseg.inference import classify_normalized, tile_multiple
from geoseg.io.labels import IGNORE
from geoseg.models.card import ModelCard
from geoseg.normalization import normalize_reflectance
from geoseg.snow_check import SnowCheck
from geoseg.training.metrics import ConfusionMatrix, SegmentationMetrics
from geoseg.training.prepare import SceneData

log = logging.getLogger(__name__)


def validate(
    network: nn.Module,
    card: ModelCard,
    scenes: list[SceneData],
    device: torch.device,
    coarsen: int = 1,
) -> dict[str, Any]:
    """Metrics on every scene's held-out window in the card's default legend, plus their total.

    Each scene is classified whole (so tiles near the holdout see their real surroundings, as in
    prediction, snow check included) and scored inside the holdout only.

    Parameters
    ----------
    network, card : nn.Module, ModelCard
        The model being trained.
    scenes : list of SceneData
        Prepared scenes; those without a holdout are skipped.
    device : torch.device
        Where to run the network.
    coarsen : int
        With ``coarsen > 1`` the model sees each scene as a sensor with pixels ``coarsen``
        times larger would (area-averaged, then resampled back as prediction resamples such a
        scene), while the reference stays the teacher's labels at full resolution: how the
        model holds on, for example, 30 m Landsat at a 10 m model.
    """
    legend = card.legend()
    groups = np.asarray(legend.matrix(card.classes), dtype=np.float32)
    to_group = np.append(groups.argmax(axis=1), IGNORE).astype(np.int64)
    names = [c.name for c in legend.classes]
    pooled = ConfusionMatrix(len(names))
    snow_check = SnowCheck.for_card(card)
    out: dict[str, Any] = {}
    for scene in scenes:
        if scene.holdout is None:
            continue
        reflectance = coarsened(scene.image, coarsen) if coarsen > 1 else scene.image
        image = model_input(reflectance, card)
        predicted = classify_normalized(
            network,
            image,
            card.tile_size,
            card.overlap,
            tile_multiple(card),
            device,
            groups=groups,
            snow_check=snow_check,
            reflectance=reflectance,
        )
        labels = scene.labels[scene.holdout]
        reference = to_group[np.where(labels == IGNORE, len(card.classes), labels)]
        matrix = ConfusionMatrix(len(names))
        matrix.update(reference, predicted[scene.holdout])
        pooled.merge(matrix)
        out[scene.name] = SegmentationMetrics.from_confusion(matrix, names).to_dict()
        rows, cols = scene.holdout
        out[scene.name]["window"] = {
            "rows": [rows.start, rows.stop],
            "cols": [cols.start, cols.stop],
        }
    if len(out) > 1:
        out["pooled"] = SegmentationMetrics.from_confusion(pooled, names).to_dict()
    return out


def held_out_metrics(
    network: nn.Module,
    card: ModelCard,
    scenes: list[SceneData],
    device: torch.device,
    coarsen: int = 1,
) -> dict[str, Any]:
    """The trained model's final scores: :func:`validate`, logged.

    With ``coarsen > 1`` the scores of :func:`validate` with that ``coarsen`` are added under
    ``coarsened_x<coarsen>``. Parameters as for :func:`validate`.
    """
    metrics = validate(network, card, scenes, device)
    for name, values in metrics.items():
        log.info("held-out %s: mIoU %s", name, values["miou"])
    if coarsen > 1:
        coarse = validate(network, card, scenes, device, coarsen=coarsen)
        for name, values in coarse.items():
            log.info("held-out %s, pixels x%d: mIoU %s", name, coarsen, values["miou"])
        metrics[f"coarsened_x{coarsen}"] = coarse
    return metrics


def coarsened(reflectance: np.ndarray, factor: float) -> np.ndarray:
    """``(bands, H, W)`` reflectance as a sensor with ``factor`` times larger pixels sees it.

    Blocks of ``factor x factor`` valid pixels are averaged (a coarse pixel integrates its
    ground; a fractional factor, 1.5 for 15 m seen from 10 m, averages the pixels each coarse
    pixel overlaps) and resampled bilinearly back to the input grid; pixels invalid in the input
    stay 0.
    """
    valid = np.any(reflectance != 0, axis=0)
    tensor = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))[None]
    weight = torch.from_numpy(valid.astype(np.float32))[None, None]
    height, width = valid.shape
    small = (max(1, int(height / factor)), max(1, int(width / factor)))
    total = nn.functional.interpolate(tensor * weight, size=small, mode="area")
    count = nn.functional.interpolate(weight, size=small, mode="area")
    seen = (count > 0).float()
    mean = total / count.clamp_min(1e-6)
    # resampled with the empty coarse pixels left out, so nodata does not darken its neighbours
    size = (height, width)
    back = nn.functional.interpolate(mean * seen, size=size, mode="bilinear", align_corners=False)
    weight_back = nn.functional.interpolate(seen, size=size, mode="bilinear", align_corners=False)
    back = back / weight_back.clamp_min(1e-6)
    out: np.ndarray = back[0].numpy()
    out[:, ~valid] = 0.0
    return out


def model_input(reflectance: np.ndarray, card: ModelCard) -> np.ndarray:
    """The card's normalization of a ``(bands, H, W)`` reflectance image, 0 where invalid."""
    valid = np.any(reflectance != 0, axis=0)
    tensor = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))[None]
    out: np.ndarray = normalize_reflectance(tensor, card.normalization)[0].numpy()
    out[:, ~valid] = 0.0
    return out


def card_metrics(metrics: dict[str, Any], reference: str) -> dict[str, Any]:
    """The model card's summary of :func:`held_out_metrics` (``{}`` when there are none).

    Parameters
    ----------
    metrics : dict
        Scores per scene, as :func:`held_out_metrics` gives them.
    reference : str
        What the scores were measured against (the recipe's ``metrics_reference``).
    """
    if not metrics:
        return {}
    record: dict[str, Any] = {"reference": reference, "held_out": {}}
    for name, values in metrics.items():
        if name.startswith("coarsened_x"):
            record[f"held_out_{name}"] = {n: _compact(v) for n, v in values.items()}
        else:
            record["held_out"][name] = _compact(values)
    return record


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "miou": _round(values["miou"]),
        "pixel_accuracy": _round(values["pixel_accuracy"]),
        "mean_accuracy": _round(values["mean_accuracy"]),
        "iou": {c: _round(v["iou"]) for c, v in values["per_class"].items()},
        "f1": {c: _round(v["f1"]) for c, v in values["per_class"].items()},
        "support": {c: v["support"] for c, v in values["per_class"].items()},
        **({"window": values["window"]} if "window" in values else {}),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
