"""The model card: everything a model file says about itself.

A geoseg model never needs its bands, normalization or classes restated by the user: they travel in
the card, beside the weights (see :mod:`geoseg.io.model_file`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from geoseg.core import ClassInfo as ClassInfo  # re-exported: a card's classes
from geoseg.errors import ModelError

#: Pixel sizes within this ratio of a model's are taken as its own (prediction does not resample).
GSD_TOLERANCE = 1.25
#: How much coarser than its pixel size a model trained at that size alone still holds: Dynamic
#: World's agreement with its own 10 m labels falls from 0.782 to 0.685 (pooled mIoU) when the
#: held-out blocks are seen through 11 m pixels and to 0.655 through 12.5 m, where the six-band
#: student, trained across 10-30 m, holds 0.777 and 0.778 (benchmarks/view_rule.py --coarsen).
SINGLE_GSD_TOLERANCE = 1.05

NormalizationMethod = Literal["log_sigmoid", "standard", "scene_percentile", "fixed"]

#: Methods of model files made before inputs were physical; such models are refused at load time.
LEGACY_NORMALIZATIONS = ("scene_percentile", "fixed")


@dataclass(frozen=True)
class Normalization:
    """How reflectance becomes model input: one fixed function per band, the same for every scene.

    Scene values are first turned into reflectance (see :mod:`geoseg.radiometry`); this is the
    model's own transform of reflectance ``r`` (0-1, surface or top of atmosphere):

    - ``log_sigmoid`` (Dynamic World's): ``t = log(1 + log_gain * r)``, standardised with the
      per-band ``mean`` and ``std``, then ``sigmoid(sigmoid_scale * t + sigmoid_offset)``;
    - ``standard``: ``(r - mean) / std`` clipped to ``clip`` (empty ``mean``/``std``: ``r``
      itself).

    No statistic of the scene enters either, so a pixel's input depends on the ground only,
    never on the rest of the file. ``scene_percentile`` and ``fixed`` are the methods of older
    model files; they are read (so ``geoseg info`` works) but such models must be retrained.

    Parameters
    ----------
    method : {"log_sigmoid", "standard"}
        Which transform to apply.
    mean, std : tuple of float
        Per-band constants.
    log_gain, sigmoid_scale, sigmoid_offset : float
        Constants of ``log_sigmoid``.
    clip : tuple of float
        Range ``standard`` values are clipped to, so outliers (clouds, glint) stay bounded.
    """

    method: NormalizationMethod = "standard"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    log_gain: float = 50.0
    sigmoid_scale: float = 5.0
    sigmoid_offset: float = -1.0
    clip: tuple[float, float] = (-1.0, 2.0)

    def __post_init__(self) -> None:
        if self.method not in ("log_sigmoid", "standard", *LEGACY_NORMALIZATIONS):
            raise ModelError(f"unknown normalization {self.method!r}: use log_sigmoid or standard")
        if len(self.mean) != len(self.std):
            raise ModelError("normalization needs as many std as mean values")
        if self.method == "log_sigmoid" and not self.mean:
            raise ModelError("log_sigmoid normalization needs one mean and one std per band")
        if any(s <= 0 for s in self.std):
            raise ModelError("normalization std values must be > 0")

    @property
    def legacy(self) -> bool:
        """Whether this is a per-scene-statistic method of an older model file."""
        return self.method in LEGACY_NORMALIZATIONS


@dataclass(frozen=True)
class Legend:
    """A view of a model's classes: each output class gathers one or more model classes.

    Prediction sums the probabilities of the model classes in each group and takes the most
    probable group, so a pixel 40% grass and 30% crops is farmland, not trees at 35%.

    Parameters
    ----------
    name : str
        Name of the view, e.g. ``"landcover"``.
    classes : tuple of ClassInfo
        The output classes.
    groups : tuple of tuple of str
        For each output class, the names of the model classes it gathers.
    description : str
        One line on what the view is for.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    groups: tuple[tuple[str, ...], ...]
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.classes) != len(self.groups):
            raise ModelError(f"legend {self.name!r} needs one group per class")

    def matrix(self, model_classes: tuple[ClassInfo, ...]) -> list[list[float]]:
        """``(model classes, output classes)`` 0/1 matrix that sums probabilities into groups.

        Raises
        ------
        ModelError
            If a model class is in no group or in several, or a group names no model class.
        """
        names = [c.name for c in model_classes]
        rows = [[0.0] * len(self.classes) for _ in names]
        for out, group in enumerate(self.groups):
            for name in group:
                if name not in names:
                    raise ModelError(f"legend {self.name!r} groups unknown class {name!r}")
                rows[names.index(name)][out] = 1.0
        orphans = [n for n, row in zip(names, rows, strict=True) if sum(row) != 1.0]
        if orphans:
            raise ModelError(f"legend {self.name!r} must put {orphans} in exactly one group")
        return rows


#: Name of the legend that is the model's own classes.
FULL_LEGEND = "full"


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
    legends : tuple of Legend
        Views of ``classes`` a prediction can deliver instead of the classes themselves.
    default_legend : str
        The legend predictions deliver unless told otherwise (``"full"``: the classes).
    reflectance_level : {"any", "toa"}
        The reflectance the model was trained on: ``toa`` (top of atmosphere) models are given
        surface reflectance with a typical path reflectance added
        (:func:`geoseg.radiometry.to_model_level`).
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
    legends: tuple[Legend, ...] = ()
    default_legend: str = FULL_LEGEND
    reflectance_level: str = "any"

    def __post_init__(self) -> None:
        if not self.bands:
            raise ModelError(f"model {self.name!r} declares no input bands")
        if not self.classes:
            raise ModelError(f"model {self.name!r} declares no classes")
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ModelError(f"model {self.name!r} has duplicate class ids {ids}")
        if self.reflectance_level not in ("any", "toa"):
            raise ModelError(
                f"model {self.name!r}: reflectance level {self.reflectance_level!r} is not any, toa"
            )
        if self.gsd is not None and self.gsd <= 0:
            raise ModelError(f"model {self.name!r} ground sample distance must be > 0")
        norm = self.normalization
        if not norm.legacy and norm.mean and len(norm.mean) != len(self.bands):
            raise ModelError(f"model {self.name!r}: normalization needs one mean per band")
        for legend in self.legends:
            legend.matrix(self.classes)
        self.legend(self.default_legend)  # raises if unknown

    @property
    def coarsest_gsd(self) -> float | None:
        """The coarsest pixel size, in metres, the model was trained to see; ``None``: any.

        A model geoseg trained with resolution augmentation (its recipe's ``augment.blur_range``,
        with ``augment.blur_probability`` above 0) saw its own pixel size up to that many times
        coarser; any other model (Dynamic World itself) is taken to hold at its own pixel size
        only. Finer scenes do not count: prediction averages them down to the model's pixels.

        >>> from geoseg.core import ClassInfo
        >>> card = ModelCard("m", "unet", ("red",), (ClassInfo(0, "water", "#0000ff"),), gsd=10.0)
        >>> card.coarsest_gsd
        10.0
        >>> augment = {"blur_probability": 0.3, "blur_range": [1.5, 3.0]}
        >>> card.with_updates(training={"recipe": {"augment": augment}}).coarsest_gsd
        30.0
        """
        if self.gsd is None:
            return None
        recipe = self.training.get("recipe")
        augment = recipe.get("augment") if isinstance(recipe, Mapping) else None
        if isinstance(augment, Mapping) and float(augment.get("blur_probability") or 0.0) > 0:
            factors = augment.get("blur_range") or (1.0,)
            return self.gsd * max(1.0, *(float(f) for f in factors))
        return self.gsd

    def holds_at(self, pixel_size_m: float) -> bool:
        """Whether the model was trained for scene pixels of ``pixel_size_m`` metres.

        That is, no coarser than :attr:`coarsest_gsd` by more than :data:`GSD_TOLERANCE`, or,
        for a model trained at its own pixel size alone, by more than
        :data:`SINGLE_GSD_TOLERANCE`.

        >>> from geoseg.core import ClassInfo
        >>> card = ModelCard("m", "unet", ("red",), (ClassInfo(0, "water", "#0000ff"),), gsd=10.0)
        >>> card.holds_at(10.4), card.holds_at(12.0)
        (True, False)
        """
        coarsest = self.coarsest_gsd
        if coarsest is None or self.gsd is None:
            return True
        tolerance = GSD_TOLERANCE if coarsest > self.gsd else SINGLE_GSD_TOLERANCE
        return pixel_size_m <= coarsest * tolerance

    @property
    def num_classes(self) -> int:
        """Number of output classes (logit channels)."""
        return len(self.classes)

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Raster value of each logit channel, in channel order."""
        return tuple(c.id for c in self.classes)

    @property
    def legend_names(self) -> tuple[str, ...]:
        """Names :meth:`legend` accepts: ``"full"`` and each declared legend."""
        return (FULL_LEGEND, *(legend.name for legend in self.legends))

    def legend(self, name: str | None = None) -> Legend:
        """The legend ``name`` (default: :attr:`default_legend`); ``"full"`` is the classes.

        Raises
        ------
        ModelError
            If the model has no such legend; the message lists those it has.
        """
        wanted = name or self.default_legend
        if wanted == FULL_LEGEND:
            return Legend(FULL_LEGEND, self.classes, tuple((c.name,) for c in self.classes))
        for legend in self.legends:
            if legend.name == wanted:
                return legend
        raise ModelError(
            f"model {self.name!r} has no legend {wanted!r}; legends: {', '.join(self.legend_names)}"
        )

    def describe(self, meanings: Mapping[str, str] | None = None) -> str:
        """A readable card: inputs, classes and what they mean, training data, held-out figures.

        This is the text ``geoseg info`` prints (less the model file's checksum).

        Parameters
        ----------
        meanings : mapping, optional
            What each class name means on the ground; default :data:`CLASS_MEANINGS`.
        """
        meanings = CLASS_MEANINGS if meanings is None else meanings
        norm = self.normalization
        lines = [self.name, ""]
        if self.description:
            lines += [self.description, ""]
        lines.append(f"architecture  {self.architecture}")
        lines.append(f"bands         {', '.join(self.bands)}")
        level = (
            "top-of-atmosphere reflectance (0-1; surface reflectance is given a typical path "
            "reflectance)"
            if self.reflectance_level == "toa"
            else "reflectance (0-1, surface or top of atmosphere)"
        )
        lines.append(
            f"input         {level}; geoseg converts the scene's values from its metadata (see "
            "geoseg predict --help: --product, --scale)"
        )
        if norm.legacy:
            lines.append(f"normalization {norm.method} (an older model: retrain it)")
        elif norm.method == "log_sigmoid":
            lines.append(
                f"normalization sigmoid({norm.sigmoid_scale:g} * standardised log(1 + "
                f"{norm.log_gain:g} * reflectance) {norm.sigmoid_offset:+g}), fixed per band"
            )
        else:
            lines.append("normalization (reflectance - mean) / std, fixed per band")
        if self.gsd is None:
            pixels = "any"
        elif self.coarsest_gsd == self.gsd:
            pixels = f"{self.gsd:g} m (trained at that size only; other scenes are resampled to it)"
        else:
            pixels = (
                f"{self.gsd:g} m (trained for scenes of {self.gsd:g}-{self.coarsest_gsd:g} m, "
                "resampled to it)"
            )
        lines.append(f"pixel size    {pixels}")
        lines.append(f"tiles         {self.tile_size} px, overlap {self.overlap} px")
        default = self.legend()
        lines += [
            "",
            f"classes delivered ({default.name}; other legends: "
            f"{', '.join(n for n in self.legend_names if n != default.name) or 'none'})",
        ]
        for info, group in zip(default.classes, default.groups, strict=True):
            gathers = "" if group == (info.name,) else f"  = {' + '.join(group)}"
            meaning = meanings.get(info.name, "")
            lines.append(f"  {info.id:>3} {info.name:<20} {info.color}{gathers}")
            if meaning:
                lines.append(f"      {meaning}")
        if default.name != FULL_LEGEND:
            lines.append(
                "model classes (--legend full): " + ", ".join(c.name for c in self.classes)
            )
        keys = ("data", "labels", "licence", "notice", "source", "command", "fine_tuned_from")
        training = [(k, self.training[k]) for k in keys if self.training.get(k)]
        if training:
            lines += ["", "training"]
            lines += [f"  {k}: {' '.join(str(v).split())}" for k, v in training]
        held_out = self.metrics.get("held_out") if self.metrics else None
        if held_out:
            lines += ["", f"held-out agreement, against {self.metrics.get('reference', '?')}"]
            for scene, values in held_out.items():
                iou = ", ".join(
                    f"{c} {v:.2f}" for c, v in values.get("iou", {}).items() if v is not None
                )
                lines.append(
                    f"  {scene}: mIoU {values.get('miou')}, pixel accuracy "
                    f"{values.get('pixel_accuracy')} ({iou})"
                )
        return "\n".join(lines)

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
            if norm.get("method") in LEGACY_NORMALIZATIONS:
                # older files: only the method matters (they are refused at load time)
                norm = {"method": norm["method"]}
            for key in ("mean", "std", "clip"):
                if key in norm:
                    norm[key] = tuple(norm[key])
            fields["normalization"] = Normalization(**norm)
            fields["legends"] = tuple(
                Legend(
                    name=item["name"],
                    classes=tuple(ClassInfo(**c) for c in item["classes"]),
                    groups=tuple(tuple(g) for g in item["groups"]),
                    description=item.get("description", ""),
                )
                for item in fields.get("legends", ())
            )
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"model card is malformed: {exc}") from exc

    def with_updates(self, **changes: Any) -> ModelCard:
        """Return a copy with some fields replaced (e.g. metrics after evaluation)."""
        data = self.to_dict()
        data.update(changes)
        return ModelCard.from_dict(data)


#: What each class means on the ground (Dynamic World's definitions, shortened).
CLASS_MEANINGS: dict[str, str] = {
    "water": "open water all year: sea, lakes, rivers, reservoirs",
    "trees": "closed or dense tree cover, natural or planted, 3 m or taller",
    "grass": "open grass, pasture, parks and grassland with little tree or shrub cover",
    "flooded_vegetation": "vegetation flooded for much of the year: marsh, mangrove, rice",
    "crops": "planted and harvested crops, row crops, cereals, ploughed fields",
    "shrub_and_scrub": "shrubland, scrub and sparse trees on bare ground, savannah",
    "built": "built-up surfaces: buildings, roads, paved and industrial areas",
    "bare": "rock, sand, soil, quarries and deserts with little vegetation",
    "snow_and_ice": "snow and ice (also clouds and thick haze the model mistakes for them)",
    "urban": "built: buildings, roads, paved and industrial areas",
    "forest": "trees: closed or dense tree cover",
    "farmland": "crops and grass (pasture, grassland, parks)",
    "other": "shrub and scrub, bare ground, flooded vegetation, snow and ice",
}

# The five land-cover classes of the embedded models, in logit order. Colors follow common
# land-cover map conventions (built red, water blue, forest dark green, cropland tan, other grey).
LANDCOVER_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "urban", "#d7191c"),
    ClassInfo(1, "water", "#2b83ba"),
    ClassInfo(2, "forest", "#1a9641"),
    ClassInfo(3, "farmland", "#f2d16b"),
    ClassInfo(4, "other", "#bababa"),
)
