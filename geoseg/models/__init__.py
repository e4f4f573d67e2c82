"""Models: architectures, self-describing cards and the embedded land-cover models."""

from geoseg.models.card import LANDCOVER_CLASSES, ClassInfo, ModelCard, Normalization
from geoseg.models.loading import LoadedModel, load_model

__all__ = [
    "LANDCOVER_CLASSES",
    "ClassInfo",
    "LoadedModel",
    "ModelCard",
    "Normalization",
    "load_model",
]
