"""How the training pixels spread over the classes, per scene and overall.

A class a model never sees, or sees on a few hundred pixels, is a class it will not learn: the
recipe's author should know before the hours of training, not from the held-out table after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geoseg.io.labels import IGNORE
from geoseg.models.card import ClassInfo

#: A class below this share of the trainable pixels is reported as scarce.
SCARCE_SHARE = 0.005


def class_distribution(scenes: Sequence[Any], classes: Sequence[ClassInfo]) -> dict[str, Any]:
    """Trainable labelled pixels per class, per scene and in total, with the scarce classes.

    Parameters
    ----------
    scenes : sequence of SceneData
        The prepared scenes (their ``labels``, ``holdout`` and ``train``).
    classes : sequence of ClassInfo
        The model's classes, in channel order.

    Returns
    -------
    dict
        ``{"scenes": {name: {class: pixels}}, "total": {class: pixels}, "share": {class:
        fraction}, "scarce": [class, ...], "absent": [class, ...]}``.
    """
    names = [c.name for c in classes]
    total = np.zeros(len(names), np.int64)
    per_scene: dict[str, dict[str, int]] = {}
    for scene in scenes:
        labels = scene.labels
        if not scene.train:
            continue
        trainable = labels != IGNORE
        if scene.holdout is not None:
            trainable = trainable.copy()
            trainable[scene.holdout] = False
        counts = np.bincount(labels[trainable], minlength=len(names))[: len(names)]
        per_scene[scene.name] = dict(zip(names, (int(n) for n in counts), strict=True))
        total += counts
    pixels = int(total.sum())
    share = {n: (float(c) / pixels if pixels else 0.0) for n, c in zip(names, total, strict=True)}
    return {
        "scenes": per_scene,
        "total": dict(zip(names, (int(n) for n in total), strict=True)),
        "share": {n: round(v, 6) for n, v in share.items()},
        "scarce": [n for n in names if 0 < share[n] < SCARCE_SHARE],
        "absent": [n for n in names if share[n] == 0],
    }
