"""Training and evaluating geoseg models.

``train(config)`` runs a recipe from ``configs/*.yaml`` and writes a self-describing model file;
``evaluate(model, scene, labels)`` scores a model with the normalization and tiling of prediction.
Heavy modules are imported on first use so ``import geoseg.training`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geoseg.training.config import TrainConfig, load_train_config
    from geoseg.training.evaluation import EvaluationResult, evaluate
    from geoseg.training.loop import TrainResult, train

__all__ = [
    "EvaluationResult",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_train_config",
    "train",
]

_HOMES = {
    "TrainConfig": "geoseg.training.config",
    "load_train_config": "geoseg.training.config",
    "EvaluationResult": "geoseg.training.evaluation",
    "evaluate": "geoseg.training.evaluation",
    "TrainResult": "geoseg.training.loop",
    "train": "geoseg.training.loop",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'geoseg.training' has no attribute {name!r}")
