"""The model card: everything a model file says about itself.

A geoseg model never needs its bands, normalisation or classes restated by the user: they travel in
the card, beside the weights (see :mod:`geoseg.io.model_file`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from geoseg.errors import ModelError

_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

NormalizationMethod = Literal["scene_percentile", "fixed"]


@dataclass(frozen=True)
class ClassInfo:
    """One output class of a model.

    Parameters
    ----------
    id : int
        The value written to the class raster (0-254; 255 is nodata).
    name : str
        Human-readable class name, e.g. ``"water"``.
    color : str
        ``#rrggbb`` colour used by the raster colour table and the QGIS style.
    """

    id: int
    name: str
    color: str

    def __post_init__(self) -> None:
        if not 0 <= self.id <= 254:
            raise ModelError(f"class id {self.id} is outside 0-254 (255 is reserved for nodata)")
        if not _HEX_COLOUR.match(self.color):
            raise ModelError(f"class {self.name!r} colour {self.color!r} is not '#rrggbb'")

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an ``(r, g, b)`` tuple of 0-255 integers."""
        return (int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16))


@dataclass(frozen=True)
class Normalization:
    """How raw scene values become model input.

    ``scene_percentile`` (the default models' choice) stretches each band between two percentiles
    of the scene's own valid pixels, computed once per scene. It assumes nothing about the sensor's
    scaling (Sentinel-2 reflectance x 10000 or x 1000, Landsat DN or reflectance all work) and,
    being fixed for the whole scene, keeps tiled prediction identical to whole-scene prediction.
    ``fixed`` applies ``(x * scale - mean) / std`` with per-band constants.

    Parameters
    ----------
    method : {"scene_percentile", "fixed"}
        Which normalisation to apply.
    low_percentile, high_percentile : float
        Percentiles mapped to 0 and 1 (``scene_percentile``).
    mean, std : tuple of float
        Per-band constants (``fixed``).
    scale : float
        Multiplier applied to raw values before ``mean``/``std`` (``fixed``).
    clip : tuple of float
        Normalised values are clipped to this range, so outliers (clouds, glint) stay bounded.
    """

    method: NormalizationMethod = "scene_percentile"
    low_percentile: float = 2.0
    high_percentile: float = 98.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    scale: float = 1.0
    clip: tuple[float, float] = (-1.0, 2.0)

    def __post_init__(self) -> None:
        if self.method not in ("scene_percentile", "fixed"):
            raise ModelError(
                f"unknown normalisation {self.method!r}: use scene_percentile or fixed"
            )
        if self.method == "fixed" and (not self.mean or len(self.mean) != len(self.std)):
            raise ModelError("fixed normalisation needs one mean and one std per band")
        if not 0 <= self.low_percentile < self.high_percentile <= 100:
            raise ModelError(
                f"percentiles {self.low_percentile}, {self.high_percentile} must satisfy "
                "0 <= low < high <= 100"
            )


@dataclass(frozen=True)
class ModelCard:
    """A self-describing model: architecture, inputs, outputs and provenance.

    Parameters
    ----------
    name : str
        Short identifier, e.g. ``"landcover-s2-unet"``.
    architecture : str
        Key in :data:`geoseg.models.architectures.ARCHITECTURES`.
    arch_params : Mapping[str, Any]
        Keyword arguments for the architecture's builder (encoder, depth, channels ...).
    bands : tuple of str
        Input bands in order, as STAC ``eo:common_name`` values (blue, green, red, nir, swir16 ...).
    gsd : float or None
        Ground sample distance the model was trained at, in metres; ``None`` means any.
    normalization : Normalization
        How raw values are turned into model input.
    classes : tuple of ClassInfo
        Output classes; the model's logit channel ``i`` is ``classes[i]``.
    tile_size, overlap : int
        Recommended tile and overlap in pixels for prediction.
    description : str
        One paragraph for ``geoseg info``.
    training : Mapping[str, Any]
        Training data, its licence and the command that reproduces the weights.
    metrics : Mapping[str, Any]
        Held-out metrics, with what they were measured against.
    """

    name: str
    architecture: str
    bands: tuple[str, ...]
    classes: tuple[ClassInfo, ...]
    arch_params: Mapping[str, Any] = field(default_factory=dict)
    gsd: float | None = None
    normalization: Normalization = field(default_factory=Normalization)
    tile_size: int = 512
    overlap: int = 64
    description: str = ""
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bands:
            raise ModelError(f"model {self.name!r} declares no input bands")
        if not self.classes:
            raise ModelError(f"model {self.name!r} declares no classes")
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ModelError(f"model {self.name!r} has duplicate class ids {ids}")
        if self.gsd is not None and self.gsd <= 0:
            raise ModelError(f"model {self.name!r} ground sample distance must be > 0")
        if self.normalization.method == "fixed" and len(self.normalization.mean) != len(self.bands):
            raise ModelError(f"model {self.name!r}: fixed normalisation needs one mean per band")

    @property
    def num_classes(self) -> int:
        """Number of output classes (logit channels)."""
        return len(self.classes)

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Raster value of each logit channel, in channel order."""
        return tuple(c.id for c in self.classes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form, as stored in model files."""
        data = asdict(self)
        data["arch_params"] = dict(self.arch_params)
        data["training"] = dict(self.training)
        data["metrics"] = dict(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Build a card from :meth:`to_dict` output, rejecting unknown keys.

        Raises
        ------
        ModelError
            If a key is unknown or a value has the wrong shape.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"model card has unknown keys {unknown}")
        try:
            fields = dict(data)
            fields["bands"] = tuple(fields["bands"])
            fields["classes"] = tuple(ClassInfo(**c) for c in fields["classes"])
            norm = dict(fields.get("normalization", {}))
            for key in ("mean", "std", "clip"):
                if key in norm:
                    norm[key] = tuple(norm[key])
            fields["normalization"] = Normalization(**norm)
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"model card is malformed: {exc}") from exc

    def with_updates(self, **changes: Any) -> ModelCard:
        """Return a copy with some fields replaced (e.g. metrics after evaluation)."""
        data = self.to_dict()
        data.update(changes)
        return ModelCard.from_dict(data)


# The five land-cover classes of the embedded models, in logit order. Colours follow common
# land-cover map conventions (built red, water blue, forest dark green, cropland tan, other grey).
LANDCOVER_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "urban", "#d7191c"),
    ClassInfo(1, "water", "#2b83ba"),
    ClassInfo(2, "forest", "#1a9641"),
    ClassInfo(3, "farmland", "#f2d16b"),
    ClassInfo(4, "other", "#bababa"),
)
