"""Typed, frozen configuration: the settings of a run, and YAML files of them.

:class:`PredictOptions` and :class:`VectorizeOptions` hold the settings of a prediction and of
vectorizing, with their defaults: the library, the command line (its ``--help`` shows these
defaults) and the benchmarks take them from here, and each value is checked once, when the options
are made, with a one-line :class:`~geoseg.errors.ConfigError`.

Any frozen dataclass whose fields are plain types (bool, int, float, str, tuples, optional values
and nested dataclasses) can be loaded with :func:`load_config`; command-line overrides use dotted
keys (``train.epochs=3``).

>>> VectorizeOptions().min_area_m2
2500.0
>>> PredictOptions(simplify_m=-1)
Traceback (most recent call last):
...
geoseg.errors.ConfigError: simplify tolerance -1 m must be >= 0 (0 turns simplification off)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from geoseg.core import first_line
from geoseg.errors import ConfigError
from geoseg.radiometry import RadiometryRequest

if TYPE_CHECKING:
    from rasterio.crs import CRS

T = TypeVar("T")

#: Default minimum mapping unit: 0.25 ha, 25 Sentinel-2 pixels (Urban Atlas uses the same MMU).
DEFAULT_MIN_AREA_M2 = 2500.0

#: Default simplification tolerance: one 10 m pixel, which turns pixel staircases into lines.
DEFAULT_SIMPLIFY_M = 10.0

#: Default processing block side in pixels (memory per block is a few tens of MB).
DEFAULT_BLOCK_SIZE = 2048

#: The smallest processing block side vectorizing accepts, in pixels.
MIN_BLOCK_SIZE = 16

#: Forward-pass arithmetic a prediction accepts (see :class:`geoseg.inference.Predictor`).
PRECISIONS = ("auto", "fp32", "bf16")

_FLIPS = ((), (-1,), (-2,), (-2, -1))
# Half and one-and-a-half times the model's pixel size: both keep a chip's grid when its sides
# and its first pixel are multiples of twice the network's downsampling (see Predictor).
_SCALES = (1.0, 0.5, 1.5)


@dataclass(frozen=True)
class TestTimeAugmentation:
    """Views of every chip whose logits are averaged.

    Parameters
    ----------
    flips : tuple of tuple of int
        Tensor dimensions to flip (``()``: the chip as it is).
    scales : tuple of float
        Resampling factors of the chip (1: as it is; 0.5: pixels twice as large).
    """

    __test__ = False  # not a pytest class, despite the name

    flips: tuple[tuple[int, ...], ...] = ((),)
    scales: tuple[float, ...] = (1.0,)

    @property
    def grid_multiple(self) -> int:
        """Factor the network's size multiple grows by so that every scale keeps the grid."""
        return 2 if any(s != 1.0 for s in self.scales) else 1

    @property
    def views(self) -> int:
        """Forward passes per chip."""
        return len(self.flips) * len(self.scales)


#: Test-time augmentations by ``--tta`` name.
TTA_MODES: dict[str, TestTimeAugmentation] = {
    "none": TestTimeAugmentation(),
    "flips": TestTimeAugmentation(flips=_FLIPS),
    "scales": TestTimeAugmentation(scales=_SCALES),
    "flips,scales": TestTimeAugmentation(flips=_FLIPS, scales=_SCALES),
}


@dataclass(frozen=True)
class VectorizeOptions:
    """How a class raster becomes polygons (see :mod:`geoseg.vectorize`).

    Parameters
    ----------
    min_area_m2 : float
        Regions smaller than this ground area are merged into their largest neighbour before
        polygonizing; 0 keeps every pixel.
    simplify_m : float
        Coverage simplification tolerance in metres; 0 keeps the exact pixel outlines.
    block_size : int
        Side of the processing blocks, pixels (at least 16); bounds memory, not the result.
    workers : int
        Processes vectorizing blocks in parallel; 0 (auto) uses every CPU on rasters of 16
        megapixels or more, 1 stays in this process. The result does not depend on it.
    dst_crs : str, CRS or None
        Reproject the polygons to this CRS on purpose; ``None`` keeps the raster's CRS.

    Raises
    ------
    ConfigError
        If a value is out of range.
    """

    min_area_m2: float = DEFAULT_MIN_AREA_M2
    simplify_m: float = DEFAULT_SIMPLIFY_M
    block_size: int = DEFAULT_BLOCK_SIZE
    workers: int = 0
    dst_crs: str | CRS | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.min_area_m2) or self.min_area_m2 < 0:
            raise ConfigError(
                f"minimum area {self.min_area_m2} m2 must be >= 0 (0 turns sieving off)"
            )
        if not math.isfinite(self.simplify_m) or self.simplify_m < 0:
            raise ConfigError(
                f"simplify tolerance {self.simplify_m} m must be >= 0 (0 turns simplification off)"
            )
        if self.block_size < MIN_BLOCK_SIZE:
            raise ConfigError(
                f"block size {self.block_size} must be at least {MIN_BLOCK_SIZE} pixels"
            )
        if self.workers < 0:
            raise ConfigError(f"vectorize workers {self.workers} must be >= 0 (0: automatic)")


@dataclass(frozen=True)
class PredictOptions:
    """Settings of a prediction run (``None`` means the model card's recommendation).

    The vectorisation settings are fields of their own (``min_area_m2``, ``simplify_m``,
    ``dst_crs``, ``vectorize_workers``), checked as :class:`VectorizeOptions` checks them;
    :meth:`vectorize_options` gathers them.

    Parameters
    ----------
    bands : tuple of str, optional
        Scene band (1-based index or description) for each model band, in model order.
    tile_size, overlap : int, optional
        Tile side and overlap in pixels of the model grid.
    batch_size : int, optional
        Tiles per forward pass; default: 1 on the CPU, as many as fit in free memory on CUDA.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    resample : bool
        Resample scenes whose ground sample distance differs from the model's.
    min_area_m2, simplify_m : float
        Vectorisation: polygons smaller than this are merged into neighbours; simplification
        tolerance in metres.
    dst_crs : str, optional
        Reproject polygons on purpose (never done silently).
    prefetch : bool
        Decode the next strip while the model runs (off only to measure what it gains).
    compile : bool
        ``torch.compile`` the network first (on the CPU it needs a C++ compiler; without one,
        or where compiling fails, the network runs as it is, with a one-line warning).
    vectorize_workers : int
        Processes vectorizing blocks in parallel; 0 (auto) uses every CPU on scenes of 16
        megapixels or more. Results do not depend on it.
    precision : {"auto", "fp32", "bf16"}
        Forward-pass arithmetic: ``auto`` is bfloat16 where the device has it natively (CUDA,
        CPUs with AVX512-BF16 or AMX), else float32.
    radiometry : RadiometryRequest
        What the user says about the scene's values (``--product``, ``--scale``, ``--offset``);
        by default geoseg works it out from the data (:mod:`geoseg.radiometry`).
    legend : str, optional
        The classes to deliver: one of the model's legends (``full`` for its own classes);
        default the model's default legend.
    tta : {"none", "flips", "scales", "flips,scales"}
        Test-time augmentation (:class:`~geoseg.inference.Predictor`): ``flips`` averages four
        mirrored predictions of every chip (4x the model's time); ``scales`` the chip as it is,
        with pixels twice as large and with pixels two thirds as large (3.5x); both: all
        twelve views (14x).
    smooth : int
        Majority-filter window (odd, 3-15 pixels of the model grid) applied to the class map
        before it is written and vectorized (:mod:`geoseg.smoothing`); 0: none. The confidence
        raster stays the model's.

    Raises
    ------
    ConfigError
        If a value is out of range or not one of those listed.
    """

    bands: tuple[str, ...] | None = None
    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    resample: bool = True
    min_area_m2: float = DEFAULT_MIN_AREA_M2
    simplify_m: float = DEFAULT_SIMPLIFY_M
    dst_crs: str | None = None
    prefetch: bool = True
    compile: bool = False
    vectorize_workers: int = 0
    precision: str = "auto"
    radiometry: RadiometryRequest = field(default_factory=RadiometryRequest)
    legend: str | None = None
    tta: str = "none"
    smooth: int = 0

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size {self.batch_size} must be at least 1")
        if self.tile_size is not None and self.tile_size < 8:
            raise ConfigError(f"tile size {self.tile_size} must be at least 8")
        if self.overlap is not None and self.overlap < 0:
            raise ConfigError(f"overlap {self.overlap} must be >= 0")
        self.vectorize_options()  # checks the vectorisation settings
        if self.smooth:
            from geoseg.smoothing import check_size  # numpy: only when smoothing is asked for

            try:
                check_size(self.smooth)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.tta not in TTA_MODES:
            raise ConfigError(f"--tta {self.tta!r} is not one of {', '.join(TTA_MODES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    def vectorize_options(self, block_size: int = DEFAULT_BLOCK_SIZE) -> VectorizeOptions:
        """The run's vectorisation settings, with blocks of ``block_size`` pixels.

        Raises
        ------
        ConfigError
            If a vectorisation setting is out of range.
        """
        return VectorizeOptions(
            min_area_m2=self.min_area_m2,
            simplify_m=self.simplify_m,
            block_size=block_size,
            workers=self.vectorize_workers,
            dst_crs=self.dst_crs,
        )


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {first_line(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping of keys to values")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested mapping.

    Raises
    ------
    ConfigError
        If an override is not of the form ``key=value``.
    """
    result: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def build_config(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build the frozen dataclass ``cls`` from a mapping, checking keys and types.

    Raises
    ------
    ConfigError
        Naming the key path for an unknown key, a missing required key or a wrong type.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(fields)}"
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, f"{where}.{name}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file with optional ``key=value`` overrides."""
    data = apply_overrides(read_yaml(path), overrides)
    return build_config(cls, data, where=Path(path).name)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build_config(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    return value
