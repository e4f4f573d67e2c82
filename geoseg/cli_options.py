"""The prediction options shared by ``geoseg`` commands, each declared once.

Each option names the :class:`~geoseg.config.PredictOptions` field it sets and takes its default
from there (:func:`field_option`), so the command line and the library cannot drift apart;
:func:`prediction_options` hands a command the options as one ``PredictOptions``. Only click and
the configuration values are imported here, so that ``geoseg --help`` stays instant.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from geoseg.config import PRECISIONS, TTA_MODES, PredictOptions

F = TypeVar("F", bound=Callable[..., Any])


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Apply a group of click options (first listed, first in --help)."""

    def decorate(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


#: PredictOptions' defaults, which the options below take (and their help texts show).
_DEFAULTS = PredictOptions()

#: Click parameter name -> (the PredictOptions field it sets, its value -> the field's value).
_PREDICT_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {}


def _default(target: str) -> Any:
    """The default of a PredictOptions field (``a.b``: field ``b`` of field ``a``)."""
    value: Any = _DEFAULTS
    for name in target.split("."):
        value = getattr(value, name)
    return value


def field_option(
    flag: str, target: str, *, convert: Callable[[Any], Any] | None = None, **attrs: Any
) -> Callable[[F], F]:
    """A click option that sets the PredictOptions field ``target``: one definition per option.

    ``target`` ``a.b`` is field ``b`` of the dataclass in field ``a`` (``radiometry.scale``).
    ``convert`` turns the option's value into the field's; without it the option's default is
    the field's.
    """
    name = target.replace(".", "_")
    _PREDICT_FIELDS[name] = (target, convert or (lambda value: value))
    if convert is None:
        attrs.setdefault("default", _default(target))
    return click.option(flag, name, **attrs)


def _predict_options(values: dict[str, Any]) -> PredictOptions:
    """The library's PredictOptions from the shared command-line options (popped from values)."""
    settings: dict[str, Any] = {}
    for name, (target, convert) in _PREDICT_FIELDS.items():
        outer, _, inner = target.partition(".")
        value = convert(values.pop(name))
        if inner:
            settings.setdefault(outer, {})[inner] = value
        else:
            settings[outer] = value
    for outer, value in settings.items():
        if isinstance(value, dict):  # a nested dataclass's fields
            settings[outer] = dataclasses.replace(_default(outer), **value)
    return PredictOptions(**settings)


def _number_list(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of numbers", param_hint=flag
        ) from None


def _band_list(bands: str | None) -> tuple[str, ...] | None:
    return tuple(b.strip() for b in bands.split(",")) if bands else None


#: How polygons are made: ``vectorize`` takes these alone, the prediction commands with the rest.
vector_options = _options(
    field_option(
        "--min-area",
        "min_area_m2",
        type=float,
        help="Regions smaller than this (m2) merge into their neighbours "
        f"[default: {_default('min_area_m2'):g}].",
    ),
    field_option(
        "--simplify",
        "simplify_m",
        type=float,
        help="Coverage simplification tolerance in metres, 0 for off "
        f"[default: {_default('simplify_m'):g}].",
    ),
    field_option("--dst-crs", "dst_crs", help="Reproject polygons to this CRS on purpose."),
    field_option(
        "--jobs",
        "vectorize_workers",
        type=click.IntRange(min=0),
        help="Processes vectorizing in parallel; 0: every CPU on scenes of 16 Mpx or more.",
    ),
)

#: Everything :func:`prediction_options` adds to a command, in --help order.
_model_options = _options(
    click.option(
        "--model",
        "model",
        default=None,
        metavar="NAME|PATH",
        help="Embedded model name or model file (default: the embedded model that fits).",
    ),
    field_option(
        "--bands",
        "bands",
        convert=_band_list,
        metavar="LIST",
        help="Scene band for each model band, comma-separated 1-based indexes or descriptions.",
    ),
    field_option(
        "--product",
        "radiometry.product",
        metavar="NAME",
        help="What the scene's values are, where its metadata does not say: reflectance, "
        "reflectance-x10000, reflectance-x1000, surface-reflectance[-x10000|-x1000], "
        "sentinel2-l1c, sentinel2-l2a, sentinel2-l1c-pb04, sentinel2-l2a-pb04, landsat-c2-l1, "
        "landsat-c2-l2, dn8, naip (default: from the file's scale/offset, a Landsat MTL beside "
        "it, the product's file name, else assumed from the data type and said so).",
    ),
    field_option(
        "--scale",
        "radiometry.scale",
        convert=functools.partial(_number_list, flag="--scale"),
        metavar="LIST",
        help="reflectance = value * scale + offset: one value or one per model band.",
    ),
    field_option(
        "--offset",
        "radiometry.offset",
        convert=functools.partial(_number_list, flag="--offset"),
        metavar="LIST",
        help="See --scale [default: 0].",
    ),
    field_option(
        "--legend",
        "legend",
        metavar="NAME",
        help="Classes to deliver: the model's default view (landcover: urban, water, forest, "
        "farmland, other) or 'full' (e.g. Dynamic World's nine classes).",
    ),
    field_option(
        "--device", "device", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True
    ),
    field_option(
        "--tile-size",
        "tile_size",
        type=click.IntRange(min=8),
        help="Tile side in pixels (default: the model's).",
    ),
    field_option(
        "--overlap",
        "overlap",
        type=click.IntRange(min=0),
        help="Overlap between tiles in pixels (default: the model's).",
    ),
    field_option(
        "--batch-size",
        "batch_size",
        type=click.IntRange(min=1),
        help="Tiles per forward pass [default: 1 on CPU, what fits in GPU memory on CUDA].",
    ),
    field_option(
        "--compile",
        "compile",
        is_flag=True,
        help=(
            "torch.compile the model first: about 1.3x on the CPU for 100 Mpx after a half "
            "minute of compiling (needs a C++ compiler)."
        ),
    ),
    field_option(
        "--precision",
        "precision",
        type=click.Choice(PRECISIONS),
        show_default=True,
        help="Forward-pass arithmetic; auto: bfloat16 where native (CUDA, AVX512-BF16/AMX CPUs).",
    ),
    field_option(
        "--tta",
        "tta",
        type=click.Choice(list(TTA_MODES)),
        show_default=True,
        help="Test-time augmentation: flips averages the chip as it is, mirrored both ways and "
        "upside down (4x the model's time); scales the chip at 1, 0.5 and 1.5 times its size "
        "(3.5x); flips,scales all twelve (14x).",
    ),
    field_option(
        "--smooth",
        "smooth",
        type=int,
        show_default=True,
        metavar="N",
        help="Majority filter of N x N pixels (odd, 3-15) on the class map before it is "
        "written and vectorized; 0: none.",
    ),
    field_option(
        "--no-resample",
        "resample",
        convert=operator.not_,
        is_flag=True,
        help="Do not resample scenes whose pixel size differs from the model's.",
    ),
    vector_options,
    click.option("--quiet", "-q", is_flag=True, help="Only errors and warnings."),
)


def prediction_options(func: F) -> F:
    """The shared model and prediction options; the command is given them as ``options``.

    The command's other keyword arguments from them are ``model`` and ``quiet``; a bad value
    raises :class:`~geoseg.errors.ConfigError` when the command runs.
    """

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        return func(*args, options=_predict_options(kwargs), **kwargs)

    return cast(F, _model_options(command))
