"""The ``geoseg`` command: parse options, call one library function, report.

Exit codes: 0 success, 1 a :class:`~geoseg.errors.GeosegError` (printed as one line, no traceback),
2 usage errors (click), 130 interrupted; the group translates every command's errors (see
:class:`GeosegGroup`). The prediction options are declared once (:func:`_field_option`), each
naming the :class:`~geoseg.config.PredictOptions` field it sets and taking its default from there.
Heavy modules are imported inside commands so that ``geoseg --help`` is instant.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import operator
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import click

from geoseg import __version__
from geoseg.config import PRECISIONS, TTA_MODES, PredictOptions
from geoseg.core import first_line
from geoseg.errors import GeosegError

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"geoseg: error: {message}", err=True)
    sys.exit(code)


class GeosegGroup(click.Group):
    """The ``geoseg`` group: turns every command's errors into one line and an exit status.

    A :class:`~geoseg.errors.GeosegError` prints its first line and exits 1, an interruption
    exits 130, click's own errors keep click's handling (usage errors exit 2), and anything else
    is an unexpected error in one line (``GEOSEG_DEBUG=1`` shows its traceback). No tracebacks
    for users.
    """

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, translating its errors."""
        try:
            return super().invoke(ctx)
        except GeosegError as exc:
            _fail(first_line(exc))
        except KeyboardInterrupt:
            _fail("interrupted; no partial output was left behind", 130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("GEOSEG_DEBUG"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {first_line(exc)} (set GEOSEG_DEBUG=1 for a "
                "traceback and please report it)"
            )


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("geoseg: %(message)s"))
    root = logging.getLogger("geoseg")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


@contextmanager
def _progress_bar(enabled: bool, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar on a terminal (rate and ETA), nothing when piped or quiet."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


@click.group(cls=GeosegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoseg")
def main() -> None:
    """Land-cover segmentation of GeoTIFF scenes into styled GeoPackages."""


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


def _field_option(
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


_vector_options = _options(
    _field_option(
        "--min-area",
        "min_area_m2",
        type=float,
        help="Regions smaller than this (m2) merge into their neighbours "
        f"[default: {_default('min_area_m2'):g}].",
    ),
    _field_option(
        "--simplify",
        "simplify_m",
        type=float,
        help="Coverage simplification tolerance in metres, 0 for off "
        f"[default: {_default('simplify_m'):g}].",
    ),
    _field_option("--dst-crs", "dst_crs", help="Reproject polygons to this CRS on purpose."),
    _field_option(
        "--jobs",
        "vectorize_workers",
        type=click.IntRange(min=0),
        help="Processes vectorizing in parallel; 0: every CPU on scenes of 16 Mpx or more.",
    ),
)

_model_options = _options(
    click.option(
        "--model",
        "model",
        default=None,
        metavar="NAME|PATH",
        help="Embedded model name or model file (default: the embedded model that fits).",
    ),
    _field_option(
        "--bands",
        "bands",
        convert=_band_list,
        metavar="LIST",
        help="Scene band for each model band, comma-separated 1-based indexes or descriptions.",
    ),
    _field_option(
        "--product",
        "radiometry.product",
        metavar="NAME",
        help="What the scene's values are, where its metadata does not say: reflectance, "
        "reflectance-x10000, reflectance-x1000, surface-reflectance[-x10000|-x1000], "
        "sentinel2-l1c, sentinel2-l2a, sentinel2-l1c-pb04, sentinel2-l2a-pb04, landsat-c2-l1, "
        "landsat-c2-l2, dn8, naip (default: from the file's scale/offset, a Landsat MTL beside "
        "it, the product's file name, else assumed from the data type and said so).",
    ),
    _field_option(
        "--scale",
        "radiometry.scale",
        convert=functools.partial(_number_list, flag="--scale"),
        metavar="LIST",
        help="reflectance = value * scale + offset: one value or one per model band.",
    ),
    _field_option(
        "--offset",
        "radiometry.offset",
        convert=functools.partial(_number_list, flag="--offset"),
        metavar="LIST",
        help="See --scale [default: 0].",
    ),
    _field_option(
        "--legend",
        "legend",
        metavar="NAME",
        help="Classes to deliver: the model's default view (landcover: urban, water, forest, "
        "farmland, other) or 'full' (e.g. Dynamic World's nine classes).",
    ),
    _field_option(
        "--device", "device", type=click.Choice(["auto", "cpu", "cuda"]), show_default=True
    ),
    _field_option(
        "--tile-size",
        "tile_size",
        type=click.IntRange(min=8),
        help="Tile side in pixels (default: the model's).",
    ),
    _field_option(
        "--overlap",
        "overlap",
        type=click.IntRange(min=0),
        help="Overlap between tiles in pixels (default: the model's).",
    ),
    _field_option(
        "--batch-size",
        "batch_size",
        type=click.IntRange(min=1),
        help="Tiles per forward pass [default: 1 on CPU, what fits in GPU memory on CUDA].",
    ),
    _field_option(
        "--compile",
        "compile",
        is_flag=True,
        help="torch.compile the model first (worth it for large scenes on a GPU).",
    ),
    _field_option(
        "--precision",
        "precision",
        type=click.Choice(PRECISIONS),
        show_default=True,
        help="Forward-pass arithmetic; auto: bfloat16 where native (CUDA, AVX512-BF16/AMX CPUs).",
    ),
    _field_option(
        "--tta",
        "tta",
        type=click.Choice(list(TTA_MODES)),
        show_default=True,
        help="Test-time augmentation: flips averages the chip as it is, mirrored both ways and "
        "upside down (4x the model's time); scales the chip at 1, 0.5 and 1.5 times its size "
        "(3.5x); flips,scales all twelve (14x).",
    ),
    _field_option(
        "--smooth",
        "smooth",
        type=int,
        show_default=True,
        metavar="N",
        help="Majority filter of N x N pixels (odd, 3-15) on the class map before it is "
        "written and vectorized; 0: none.",
    ),
    _field_option(
        "--no-resample",
        "resample",
        convert=operator.not_,
        is_flag=True,
        help="Do not resample scenes whose pixel size differs from the model's.",
    ),
    _vector_options,
    click.option("--quiet", "-q", is_flag=True, help="Only errors and warnings."),
)


def _prediction_options(func: F) -> F:
    """The shared model and prediction options; the command is given them as ``options``.

    The command's other keyword arguments from them are ``model`` and ``quiet``; a bad value
    raises :class:`~geoseg.errors.ConfigError` when the command runs.
    """

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        return func(*args, options=_predict_options(kwargs), **kwargs)

    return cast(F, _model_options(command))


@main.command()
@click.argument("scenes", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Polygons to write, format by extension: .gpkg (layer 'landcover', styled in the "
    "file), .shp, .geojson, .fgb (with a .qml style beside).",
)
@click.option(
    "--raster",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the class raster (Cloud-Optimized GeoTIFF).",
)
@click.option(
    "--confidence",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write each pixel's confidence: the probability of its mapped class in percent "
    "(GeoTIFF, uint8 0-100, nodata 255); the run report gives the share below 50, 70, 90.",
)
@_prediction_options
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
def predict(
    scenes: tuple[str, ...],
    out: Path,
    raster: Path | None,
    confidence: Path | None,
    model: str | None,
    quiet: bool,
    overwrite: bool,
    options: PredictOptions,
) -> None:
    """Segment SCENES into land cover polygons (and optionally a class raster).

    Several scenes are dates of one place (any CRS or grid): they are read onto the first
    one's grid and each pixel gets the class that is most probable on average over the dates
    where it is valid (clouds masked as nodata drop out), so seasons settle into land use.
    """
    _setup_logging(quiet)
    from geoseg.pipeline import predict as run_predict

    with _progress_bar(not quiet, "tile") as progress:
        result = run_predict(
            scenes[0] if len(scenes) == 1 else scenes,
            out,
            model=model,
            raster=raster,
            options=options,
            overwrite=overwrite,
            progress=progress,
            confidence=confidence,
        )
    for scene, pixels in zip(scenes, result.date_class_pixels, strict=False):
        log.info("date %s alone: %s", Path(scene).name, _shares(pixels))
    shares = _shares(result.class_pixels)
    log.info(
        "model %s, %d tile%s in %.1f s: %s",
        result.model,
        result.tiles,
        "" if result.tiles == 1 else "s",
        result.timings.get("total", 0.0),
        shares,
    )
    written = (result.gpkg, result.raster, result.confidence)
    log.info("wrote %s", ", ".join(str(p) for p in written if p))


def _shares(pixels: dict[str, int]) -> str:
    total = sum(pixels.values()) or 1
    return ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in pixels.items())


@main.command()
def models() -> None:
    """List the embedded models: the first that fits a scene's bands is the default for it."""
    from geoseg.models.loading import DEFAULT_MODELS, read_embedded_cards

    cards = read_embedded_cards()
    if not cards:
        click.echo("no embedded models")
        return
    order = {name: i for i, name in enumerate(DEFAULT_MODELS)}
    cards.sort(key=lambda item: order.get(item[0].name, len(order)))
    click.echo(f"{'model':<20} {'bands':<62} {'pixel':>6}  fits")
    for card, _ in cards:
        pixel = f"{card.gsd:g} m" if card.gsd else "any"
        fits = ", ".join(_FITS.get(card.name, ())) or "scenes with these bands"
        mark = " (default for these bands)" if card.name in order else ""
        click.echo(f"{card.name:<20} {','.join(card.bands):<62} {pixel:>6}  {fits}{mark}")
    click.echo(
        "\nWith no --model, predict takes the first model above whose bands the scene names; "
        "geoseg info MODEL prints a card."
    )


# which scenes each embedded model is meant for (for `geoseg models`)
_FITS: dict[str, tuple[str, ...]] = {
    "landcover-s2-dw": ("Sentinel-2 with red-edge bands",),
    "landcover-s2-dw6": ("Sentinel-2", "Landsat 4-9"),
    "landcover-rgbn-dw": ("NAIP", "4-band aerial"),
    "landcover-rgb-dw": ("orthophotos", "RGB"),
}


@main.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def info(model: str, as_json: bool) -> None:
    """Print the model card of MODEL (embedded name or file)."""
    from geoseg.models.loading import load_model_file, resolve_model_path

    card, _, sha256 = load_model_file(resolve_model_path(model))
    if as_json:
        click.echo(json.dumps({**card.to_dict(), "sha256": sha256}, indent=2))
        return
    click.echo(card.describe())
    click.echo(f"\nsha256        {sha256}")


@main.command()
@click.argument("raster", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="GeoPackage to write (layer 'landcover').",
)
@click.option(
    "--classes",
    "classes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML/JSON list of {id, name, color} (default: from the raster).",
)
@_vector_options
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--quiet", "-q", is_flag=True, help="Only errors and warnings.")
def vectorize(
    raster: str,
    out: Path,
    classes_file: Path | None,
    min_area_m2: float,
    simplify_m: float,
    dst_crs: str | None,
    vectorize_workers: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Vectorize a class raster made elsewhere into a styled GeoPackage."""
    _setup_logging(quiet)
    from geoseg.vectorize import vectorize_raster

    result = vectorize_raster(
        raster,
        out,
        classes=classes_file,
        dst_crs=dst_crs,
        overwrite=overwrite,
        min_area_m2=min_area_m2,
        simplify_m=simplify_m,
        workers=vectorize_workers,
    )
    log.info(
        "wrote %s: %d polygons, %.1f km2",
        result.path,
        result.polygon_count,
        result.total_area_m2 / 1e6,
    )


@main.command("review-list")
@click.argument("gpkg", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", default=20, show_default=True, help="How many polygons to list.")
@click.option(
    "--min-area",
    default=10_000.0,
    show_default=True,
    metavar="M2",
    help="Leave out polygons smaller than this (square metres).",
)
@click.option("--layer", default="landcover", show_default=True, help="The polygon layer.")
def review_list(gpkg: Path, top: int, min_area: float, layer: str) -> None:
    """List the unreviewed polygons of GPKG to check first: least confident first.

    Needs a map predicted with --confidence. Polygons already ticked reviewed are left out.
    In QGIS, select one with the expression "fid" = N, or zoom to its x, y.
    """
    from geoseg.io.review_candidates import read_review_candidates
    from geoseg.review import rank_for_review

    items = rank_for_review(**read_review_candidates(gpkg, layer), top=top, min_area_m2=min_area)
    if not items:
        click.echo("nothing to review: every polygon is reviewed, small or without confidence")
        return
    click.echo(f"{'fid':>7}  {'class':<12} {'area (ha)':>10} {'confidence':>10}  x, y")
    for item in items:
        click.echo(
            f"{item.fid:>7}  {item.class_name:<12} {item.area_m2 / 1e4:>10.2f} "
            f"{item.confidence:>9.1f}%  {item.x:.1f}, {item.y:.1f}"
        )


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--no-resume", is_flag=True, help="Start afresh even if a checkpoint exists.")
@click.option("--quiet", "-q", is_flag=True, help="Only errors and warnings.")
def train(config: Path, overrides: tuple[str, ...], no_resume: bool, quiet: bool) -> None:
    """Train a model from a CONFIG recipe, with optional key=value OVERRIDES."""
    _setup_logging(quiet)
    from geoseg.training import load_train_config
    from geoseg.training import train as run_train

    result = run_train(load_train_config(config, overrides), resume=not no_resume)
    log.info("wrote model %s", result.model_path)


@main.command()
@click.argument("scene", type=click.Path(dir_okay=False, path_type=str))
@click.argument("labels", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--label-map",
    default=None,
    metavar="FILE|MAP",
    help="Label values to the classes delivered (or 'ignore'): inline "
    "'crop=farmland,tree=forest,cloud=ignore', or a YAML file of the same pairs "
    "('crop: farmland' per line). Default: labels are class names (or ids, for rasters).",
)
@click.option("--label-column", default=None, help="Class column of vector labels.")
@click.option("--rows", default=None, metavar="START:STOP", help="Score only these pixel rows.")
@click.option("--cols", default=None, metavar="START:STOP", help="Score only these pixel columns.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the metrics as JSON.",
)
@_prediction_options
def evaluate(
    scene: str,
    labels: str,
    label_map: str | None,
    label_column: str | None,
    rows: str | None,
    cols: str | None,
    json_path: Path | None,
    model: str | None,
    quiet: bool,
    options: PredictOptions,
) -> None:
    """Score a model on SCENE against reference LABELS (raster or polygons).

    The model is chosen as predict chooses it, and only the labelled part of the scene is
    predicted. Scores are in the classes predict delivers (--legend).
    """
    _setup_logging(quiet)
    from geoseg.training import evaluate as run_evaluate

    result = run_evaluate(
        model,
        scene,
        labels,
        label_map=_label_map(label_map),
        label_column=label_column,
        rows=_span(rows, "--rows"),
        cols=_span(cols, "--cols"),
        options=options,
    )
    click.echo(result.table())
    if json_path:
        result.write_json(json_path)


def _label_map(text: str | None) -> dict[str, Any] | None:
    """``a=b,c=d`` inline, else a YAML file of the same pairs."""
    if text is None:
        return None
    if "=" in text and not Path(text).is_file():
        pairs = [item.partition("=") for item in text.split(",") if item.strip()]
        if any(not sep or not key.strip() or not value.strip() for key, sep, value in pairs):
            raise click.BadParameter(
                f"{text!r}: expected label=class pairs separated by commas",
                param_hint="--label-map",
            )
        return {key.strip(): value.strip() for key, _, value in pairs}
    from geoseg.config import read_yaml

    return read_yaml(text)


def _span(text: str | None, option: str) -> tuple[int, int] | None:
    if text is None:
        return None
    start, sep, stop = text.partition(":")
    if not sep or not start.strip().isdigit() or not stop.strip().isdigit():
        raise click.BadParameter(
            f"expected START:STOP pixel indexes, got {text!r}", param_hint=option
        )
    return int(start), int(stop)


@main.command()
@click.argument("input_", metavar="INPUT", type=str)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder (created if missing); re-running resumes.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Local Dask worker processes; 0 runs in this process "
    "[default: one per GPU, else half the cores].",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Submit to a running Dask scheduler instead of starting a local cluster.",
)
@click.option(
    "--on-error",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="Go on past failed scenes, or stop at the first.",
)
@click.option("--raster", is_flag=True, help="Also write each scene's class raster.")
@click.option("--merged", is_flag=True, help="Also write one GeoPackage of all scenes.")
@_prediction_options
def batch(
    input_: str,
    out: Path,
    workers: int | None,
    scheduler: str | None,
    on_error: str,
    raster: bool,
    merged: bool,
    model: str | None,
    quiet: bool,
    options: PredictOptions,
) -> None:
    """Segment every scene of INPUT (folder, glob, .zip, .tar[.gz], .txt list) into --out."""
    _setup_logging(quiet)
    # one line per scene is the batch's job: keep predict's per-stage chatter for `predict`
    for name in ("geoseg.pipeline", "geoseg.vectorize", "geoseg.report"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from geoseg.batch import run_batch

    with _progress_bar(not quiet, "scene") as bar:
        progress = None
        if bar is not None:

            def progress(done: int, failed: int, left: int) -> None:
                bar(done + failed, done + failed + left)

        report = run_batch(
            input_,
            out,
            model=model,
            options=options,
            workers=workers,
            scheduler=scheduler,
            on_error="fail" if on_error == "fail" else "skip",
            raster=raster,
            merged=merged,
            progress=progress,
        )
    totals = report.totals()
    log.info(
        "%d scene%s: %d done, %d already complete, %d failed, %d not run; %.1f scenes/min (%s)",
        totals["scenes"],
        "" if totals["scenes"] == 1 else "s",
        totals["done"],
        totals["cached"],
        totals["failed"],
        totals["not_run"],
        report.scenes_per_minute,
        report.executor,
    )
    log.info("report: %s", report.report_json)
    if not report.ok:
        stopped = f", {totals['not_run']} not run (stopped at the first)" if report.stopped else ""
        _fail(
            f"{totals['failed']} of {totals['scenes']} scenes failed{stopped}: see "
            f"{report.report_json}; re-run the same command to retry only those"
        )
