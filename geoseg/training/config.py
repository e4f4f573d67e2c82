"""The training configuration: frozen dataclasses loaded from YAML by :func:`load_train_config`.

Unknown keys and wrong types are :class:`~geoseg.errors.ConfigError`, so a typo in a recipe fails
before any data is read. Every shipped recipe lives in ``configs/`` and is exercised by a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from geoseg.config import apply_overrides, build_config, read_yaml
from geoseg.errors import ConfigError
from geoseg.radiometry import RadiometryRequest


@dataclass(frozen=True)
class HoldoutConfig:
    """A pixel window of a scene kept for validation and never trained on.

    Parameters
    ----------
    rows, cols : tuple of int, optional
        Half-open ``[start, stop)`` pixel ranges on the scene's grid; ``None`` means all.
    """

    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None


@dataclass(frozen=True)
class SceneConfig:
    """One labelled scene.

    Parameters
    ----------
    name : str
        Short name used in logs and metrics.
    image : str
        A multi-band raster. Relative paths are resolved against the config file's folder.
    band_files : tuple of str
        Alternatively, one single-band file per band, in the model's band order (the teacher's
        when the recipe has a ``teacher``); they are stacked onto the first file's grid (bilinear
        for bands on coarser grids) with the band names as descriptions.
    bands : tuple of str
        Which band of ``image`` feeds each model band: 1-based indexes or band descriptions.
        Empty: matched by band descriptions, else by count.
    labels : str
        A class raster, or a vector file (GeoPackage, shapefile ...) with ``label_column``.
        Optional when the recipe has a ``teacher``: its most probable class is the label.
    label_column : str, optional
        Attribute of the vector labels holding the class.
    label_map : dict
        Label value (raster value or polygon class, as text) to model class *name* or id, or
        ``ignore``. Empty: raster values are class ids and polygon classes are class names.
    label_filter : str, optional
        A boolean attribute of the vector labels: only polygons where it is true are labels
        (``reviewed`` in a geoseg GeoPackage an analyst has checked and corrected).
    probabilities : str, optional
        Teacher class probabilities (one band per label value, uint8 / 255) for distillation;
        bands are grouped into model classes with ``label_map``.
    holdout : HoldoutConfig, optional
        The validation window of this scene.
    train : bool
        Whether pixels outside ``holdout`` are trained on.
    weight : float
        Relative sampling weight of the scene (multiplied by its trainable area).
    product : str, optional
        What the stored values are (a :data:`geoseg.radiometry.PRODUCTS` key), where the file
        does not say it; ``scale``/``offset`` alternatively.
    scale, offset : tuple of float, optional
        ``reflectance = value * scale + offset`` (one value or one per band).
    """

    name: str
    labels: str = ""
    image: str = ""
    band_files: tuple[str, ...] = ()
    bands: tuple[str, ...] = ()
    label_column: str | None = None
    label_map: dict[str, Any] = field(default_factory=dict)
    label_filter: str | None = None
    probabilities: str | None = None
    holdout: HoldoutConfig | None = None
    train: bool = True
    weight: float = 1.0
    product: str | None = None
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if bool(self.image) == bool(self.band_files):
            raise ConfigError(f"scene {self.name!r}: give either image or band_files")
        self.radiometry()  # a bad product or scale fails when the recipe is read

    def radiometry(self) -> RadiometryRequest:
        """What the recipe says about the scene's values."""
        return RadiometryRequest(self.product, self.scale, self.offset)


@dataclass(frozen=True)
class ModelConfig:
    """The model to train and the card it will carry.

    Parameters
    ----------
    name : str
        Model name, e.g. ``landcover-s2-unet``.
    architecture : str, optional
        Key of :data:`geoseg.models.architectures.ARCHITECTURES`; ``unet`` when neither this nor
        ``init_from`` says otherwise.
    arch_params : dict
        Keyword arguments of the architecture builder.
    bands : tuple of str
        Input bands as STAC common names, in order. Empty: those of ``init_from``, else
        blue, green, red, nir, swir16, swir22.
    gsd : float, optional
        Ground sample distance of the training data in metres.
    tile_size, overlap : int
        Recommended prediction tiling, stored in the card.
    description : str
        Card description.
    init_from : str, optional
        Embedded model name or model file to start from (fine-tuning). Its classes and
        normalization are kept, and its architecture unless ``architecture``/``arch_params``
        name another: then a new network is built and every weight whose name and shape match
        (typically the shared encoder) is copied over. If ``bands`` differ from its bands, the
        first convolution is adapted: shared bands keep their weights, new bands start from the
        mean of the old ones.
    provenance : dict
        Copied into the card's ``training`` record: data, label source, licences, the command
        that reproduces the weights, and ``metrics_reference`` (what the held-out metrics were
        measured against).
    classes : {"landcover", "dynamic_world"}
        A new model's classes: geoseg's five, or Dynamic World's nine with the five-class view as
        the default legend (``init_from`` keeps its model's classes).
    """

    name: str
    architecture: str | None = None
    arch_params: dict[str, Any] = field(default_factory=dict)
    bands: tuple[str, ...] = ()
    gsd: float | None = 10.0
    tile_size: int = 512
    overlap: int = 64
    description: str = ""
    init_from: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    classes: Literal["landcover", "dynamic_world"] = "landcover"


@dataclass(frozen=True)
class LossConfig:
    """The training objective.

    Parameters
    ----------
    name : str
        Hard-label loss from :data:`geoseg.training.losses.LOSSES`.
    weight : float
        Weight of the hard-label loss.
    class_weights : tuple of float
        Per-class weights (cross-entropy, focal); empty means equal.
    params : dict
        Extra keyword arguments of the loss (``gamma``, ``alpha``, ``beta`` ...).
    distillation : float
        Weight of the soft-target (teacher probability) loss; 0 disables it.
    temperature : float
        Softening temperature of the distillation term.
    view : float
        Weight of a cross-entropy on the classes the model delivers by default (its card's
        ``default_legend``: probabilities summed into groups) against the hard targets' groups;
        0 disables it. Needs a default legend that groups the classes.
    margin : int
        Pixels along each edge of a training patch that no term scores. Prediction's tiles
        overlap, so every delivered pixel sees the network's whole receptive field; a patch's
        edge pixels see zero padding instead. With a margin as wide as the receptive field's
        reach, training scores only what prediction delivers (enlarge ``optim.patch_size`` by
        twice the margin to score as many pixels as before).
    """

    name: str = "ce"
    weight: float = 1.0
    class_weights: tuple[float, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    distillation: float = 0.0
    temperature: float = 1.0
    view: float = 0.0
    margin: int = 0

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ConfigError(f"loss.margin must be 0 or more pixels, got {self.margin}")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training patches.

    Parameters
    ----------
    flips, rot90 : bool
        Random horizontal/vertical flips and quarter turns.
    gain_range : tuple of float
        Range of a reflectance gain common to all bands (drawn log-uniformly): another sensor's
        calibration, another sun angle, top of atmosphere vs surface.
    band_gain : float
        Relative jitter of each band's gain (``1 +- band_gain``): another sensor's band
        responses (Landsat vs Sentinel-2).
    band_offset : float
        Additive reflectance jitter of each band (``+- band_offset``).
    radiometric_probability : float
        Probability that a patch gets the gain, band and offset jitter and the haze at all; the
        other patches keep their reflectance as it is (resolution augmentation is separate), so
        a model can fit its scenes closely and still see other sensors and atmospheres.
    haze_probability : float
        Probability of adding or removing path reflectance: a value drawn from ``haze_range`` at
        the blue band, falling with wavelength (about ``wavelength ** -2``) in the other bands.
        Negative values take the atmosphere away: top-of-atmosphere data made to look like
        surface reflectance, so a model holds on either.
    haze_range : tuple of float
        Path reflectance added at the blue band (blue's typical clear-sky path is about 0.07).
    zoom_probability : float
        Probability of rescaling a patch by a factor drawn from ``zoom_range``.
    zoom_range : tuple of float
        Rescale factors (>1 magnifies), so the model sees objects at other sizes.
    blur_probability : float
        Probability of simulating a coarser sensor: area-downsample by a factor from
        ``blur_range`` and upsample back (what prediction does to a 30 m Landsat scene).
    blur_range : tuple of float
        Downsampling factors for ``blur_probability``.
    focus_probability : float
        Probability of centring a patch on a pixel of one of ``focus_classes`` (rare classes).
    focus_classes : tuple of str
        Class names to focus on.
    """

    flips: bool = True
    rot90: bool = True
    gain_range: tuple[float, float] = (1.0, 1.0)
    band_gain: float = 0.0
    band_offset: float = 0.0
    radiometric_probability: float = 1.0
    haze_probability: float = 0.0
    haze_range: tuple[float, float] = (-0.025, 0.05)
    zoom_probability: float = 0.0
    zoom_range: tuple[float, float] = (0.5, 2.0)
    blur_probability: float = 0.0
    blur_range: tuple[float, float] = (1.5, 3.0)
    focus_probability: float = 0.0
    focus_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "radiometric_probability",
            "haze_probability",
            "zoom_probability",
            "blur_probability",
            "focus_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"augment.{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation, schedule, checkpoints and hardware.

    Parameters
    ----------
    steps : int
        Optimiser steps.
    batch_size, patch_size : int
        Patches per step and their side in pixels.
    lr, weight_decay : float
        AdamW settings.
    schedule : {"cosine", "constant"}
        Learning-rate schedule after ``warmup_steps`` of linear warm-up.
    seed : int
        Seed of every random choice: the same config gives the same weights.
    threads : int
        CPU threads for torch (keep low on shared machines).
    device : {"auto", "cpu", "cuda"}
        Where to train; ``auto`` uses CUDA when present.
    amp : bool
        Mixed precision on CUDA (ignored on CPU).
    checkpoint_every : int
        Steps between checkpoints (the run resumes from the last one).
    validate_every : int
        Steps between validations; 0 validates only at the end.
    validate_coarsen : int
        At the end, also score the holdouts as a sensor with pixels this many times larger sees
        them (3: Landsat's 30 m at a 10 m model), against the full-resolution reference; 1 skips.
    log_every : int
        Steps between progress reports.
    freeze_batch_norm : bool
        Keep batch-norm statistics and affine terms as they are (fine-tuning a trained model
        on few, small batches, whose statistics would be noisy).
    sampler : {"memory", "torchgeo"}
        Where patches come from. ``memory``: drawn from the prepared scenes held in memory
        (area-weighted, with ``augment.focus_classes``). ``torchgeo``: the prepared scenes are
        written as GeoTIFFs, read as torchgeo ``RasterDataset`` s (image and labels joined by
        intersection) and sampled with a ``RandomGeoSampler`` inside each scene's training area
        (the largest band beside its holdout); focus sampling does not apply.
    """

    steps: int = 1000
    batch_size: int = 8
    patch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 20
    seed: int = 0
    threads: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    checkpoint_every: int = 100
    validate_every: int = 0
    validate_coarsen: int = 1
    log_every: int = 10
    freeze_batch_norm: bool = False
    sampler: Literal["memory", "torchgeo"] = "memory"

    def __post_init__(self) -> None:
        if self.validate_coarsen < 1:
            raise ConfigError(
                f"optim.validate_coarsen must be 1 or more, got {self.validate_coarsen}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """A complete training recipe.

    Parameters
    ----------
    model : ModelConfig
    scenes : tuple of SceneConfig
    loss : LossConfig
    augment : AugmentConfig
    optim : OptimConfig
    output : str
        Run folder: prepared inputs, checkpoints, the final model file and metrics.
    teacher : str, optional
        Embedded model name or model file that labels every scene on the fly (its class
        probabilities are the soft targets, its most probable class the hard label where a scene
        has no ``labels``). Its classes must be the student's. E.g. ``landcover-s2-dw``: any
        Sentinel-2 scene with its nine bands becomes training data, with no TensorFlow.
    base_dir : str
        Folder relative paths are resolved against (set to the config file's folder on load).
    """

    model: ModelConfig
    scenes: tuple[SceneConfig, ...]
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs/train"
    teacher: str | None = None
    base_dir: str = "."

    def __post_init__(self) -> None:
        if not self.scenes:
            raise ConfigError("scenes: at least one labelled scene is needed")
        if not any(s.train for s in self.scenes):
            raise ConfigError("scenes: no scene has train: true")
        names = [s.name for s in self.scenes]
        if len(set(names)) != len(names):
            raise ConfigError(f"scenes: names must be unique, got {names}")
        unlabelled = [s.name for s in self.scenes if not s.labels]
        if unlabelled and self.teacher is None:
            raise ConfigError(f"scenes {unlabelled} have no labels and the recipe no teacher")
        if 2 * self.loss.margin >= self.optim.patch_size:
            raise ConfigError(
                f"loss.margin {self.loss.margin} leaves nothing of a {self.optim.patch_size} px "
                "patch to score: make it under half of optim.patch_size"
            )

    def resolve(self, path: str) -> Path:
        """Resolve a path of the config against :attr:`base_dir` (absolute paths unchanged)."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load a training recipe from YAML, with ``key.sub=value`` overrides.

    Relative data paths are resolved against the folder of the YAML file; ``output`` is relative
    to the current folder.

    Raises
    ------
    ConfigError
        If the file is unreadable, a key is unknown, a type is wrong or a value is invalid.
    """
    data = apply_overrides(read_yaml(path), overrides)
    data.setdefault("base_dir", str(Path(path).resolve().parent))
    return build_config(TrainConfig, data, where=Path(path).name)


def train_config_from_dict(data: dict[str, Any], base_dir: str | Path = ".") -> TrainConfig:
    """Build a training recipe from a mapping (notebooks, tests).

    Raises
    ------
    ConfigError
        If a key is unknown, a type is wrong or a value is invalid.
    """
    data = dict(data)
    data.setdefault("base_dir", str(base_dir))
    return build_config(TrainConfig, data, where="config")
