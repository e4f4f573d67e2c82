"""The ``geoseg`` command: parse options, call one library function, report.

Exit codes: 0 success, 1 a :class:`~geoseg.errors.GeosegError` (printed as one line, no traceback),
2 usage errors (click), 130 interrupted; the group translates every command's errors (see
:class:`GeosegGroup`). The prediction options are declared once, in :mod:`geoseg.cli_options`,
each naming the :class:`~geoseg.config.PredictOptions` field it sets and taking its default from
there.
Heavy modules are imported inside commands so that ``geoseg --help`` is instant.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from geoseg import __version__
from geoseg.cli_options import prediction_options, vector_options
from geoseg.config import PredictOptions
from geoseg.core import first_line
from geoseg.errors import GeosegError

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
@prediction_options
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
    click.echo(f"{'model':<20} {'bands':<62} {'pixels':>8}  fits")
    for card, _ in cards:
        coarsest = card.coarsest_gsd
        pixel = "any" if coarsest is None else f"{card.gsd:g}-{coarsest:g} m"
        if coarsest == card.gsd:
            pixel = f"{card.gsd:g} m"
        fits = ", ".join(_FITS.get(card.name, ())) or "scenes with these bands"
        mark = " (default for these bands)" if card.name in order else ""
        click.echo(f"{card.name:<20} {','.join(card.bands):<62} {pixel:>8}  {fits}{mark}")
    click.echo(
        "\nWith no --model, predict takes the first model above whose bands the scene names "
        "and that was trained for pixels as coarse as the scene's (finer scenes are averaged "
        "down); geoseg info MODEL prints a card."
    )


# which scenes each embedded model is meant for (for `geoseg models`)
_FITS: dict[str, tuple[str, ...]] = {
    "landcover-s2-dw": ("Sentinel-2 at 10 m with red-edge bands",),
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
    from geoseg.snow_check import DESCRIPTION, SnowCheck

    if SnowCheck.for_card(card) is not None:
        click.echo(f"\nsnow check    {DESCRIPTION}")
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
@vector_options
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
@click.option(
    "--label-column",
    default=None,
    help="Class column of vector labels. Default: a column named class, label, class_name "
    "or landcover (any case), else the only attribute.",
)
@click.option("--rows", default=None, metavar="START:STOP", help="Score only these pixel rows.")
@click.option("--cols", default=None, metavar="START:STOP", help="Score only these pixel columns.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the metrics as JSON.",
)
@prediction_options
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
    from geoseg.training.evaluation import check_result_path

    check_result_path(json_path, model, scene, labels)
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
@prediction_options
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
