"""The run report: what a run produced, how long each stage took, and a quicklook of the map.

Two files beside the GeoPackage ``OUT.gpkg``: ``OUT.report.json`` (class areas in m2 and %,
polygon counts, timings per stage, parameters, provenance, peak memory) and
``OUT.quicklook.png`` (the class raster, decimated, colored by class, with a legend), so an
analyst can check a run without opening QGIS.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from geoseg import __version__
from geoseg.core import NODATA
from geoseg.io.class_raster import ClassRaster, open_class_raster, read_decimated
from geoseg.io.report_files import save_figure, write_json
from geoseg.models.card import ClassInfo
from geoseg.provenance import Provenance
from geoseg.vectorize import VectorizeResult

log = logging.getLogger(__name__)

#: Pixels read (at most) from the class raster for the quicklook.
QUICKLOOK_PIXELS = 1_500_000


@dataclass(frozen=True)
class RunReport:
    """The files of a run report and what they say.

    Parameters
    ----------
    json_path : Path
        The JSON report.
    quicklook_path : Path
        The PNG quicklook.
    data : Mapping[str, Any]
        The report's content, as written to ``json_path``.
    """

    json_path: Path
    quicklook_path: Path
    data: Mapping[str, Any]


def report_paths(out_path: str | PathLike[str]) -> tuple[Path, Path]:
    """Where the report of a run writing ``out_path`` goes: ``(json, png)`` beside it.

    >>> [p.name for p in report_paths("runs/landcover.gpkg")]
    ['landcover.report.json', 'landcover.quicklook.png']
    """
    out = Path(out_path)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{stem}.report.json"), out.with_name(f"{stem}.quicklook.png")


def write_run_report(
    out_path: str | PathLike[str],
    class_raster_path: str | PathLike[str],
    result: VectorizeResult | None,
    stage_timings_s: Mapping[str, float],
    *,
    provenance: Provenance | None = None,
    classes: Sequence[ClassInfo] | None = None,
    class_raster_label: str | None = None,
    confidence: Mapping[str, float] | None = None,
    overwrite: bool = False,
    write_to: tuple[Path, Path] | None = None,
) -> RunReport:
    """Write ``OUT.report.json`` and ``OUT.quicklook.png`` beside ``out_path``.

    Parameters
    ----------
    out_path : path-like
        The run's main output (the GeoPackage); the report files are named after it.
    class_raster_path : path-like
        The class raster the run wrote (read decimated for the quicklook).
    result : VectorizeResult or None
        What vectorizing produced (areas, counts, classes); ``None`` if the run did not vectorize,
        in which case areas are estimated from the decimated raster.
    stage_timings_s : Mapping[str, float]
        Seconds per pipeline stage, in order (e.g. ``read``, ``inference``, ``stitch``,
        ``vectorize``).
    provenance : Provenance or None
        The run's provenance, recorded as is.
    classes : sequence of ClassInfo or None
        Classes for names and colors; by default ``result.classes``, else the raster's own.
    class_raster_label : str or None
        What the report calls the class raster (e.g. the final ``--raster`` path, or ``None``
        when the pipeline's class raster was a temporary file); default ``class_raster_path``.
    confidence : mapping, optional
        :func:`confidence_summary` of the run's confidence raster, if it wrote one.
    overwrite : bool
        Replace existing report files.
    write_to : (Path, Path), optional
        Files to write the JSON and the PNG to instead of their own paths (temporaries that
        are renamed there later); the report still names its own paths.

    Returns
    -------
    RunReport
        Paths (its own) and content.

    Raises
    ------
    OutputError
        If a report file exists without ``overwrite`` or cannot be written.
    """
    json_path, png_path = report_paths(out_path)
    raster = open_class_raster(class_raster_path)
    labels = read_decimated(raster, QUICKLOOK_PIXELS)
    chosen = _classes(classes, result, raster, labels)
    data = build_report(
        raster,
        labels,
        chosen,
        result,
        stage_timings_s,
        provenance=provenance,
        outputs={
            "geopackage": str(Path(out_path)),
            "report": str(json_path),
            "quicklook": str(png_path),
        },
        raster_label=str(class_raster_path) if class_raster_label is None else class_raster_label,
    )
    shares = {c["id"]: c["area_percent"] for c in data["classes"]}
    if confidence:
        data["confidence"] = dict(confidence)
    figure = render_quicklook(
        labels,
        chosen,
        raster,
        title=_quicklook_title(provenance, out_path, confidence),
        shares=shares,
    )
    json_file, png_file = (json_path, png_path) if write_to is None else write_to
    save_figure(figure, png_file, overwrite)
    write_json(json_file, data, overwrite)
    log.info("wrote run report %s and quicklook %s", json_path, png_path)
    return RunReport(json_path=json_path, quicklook_path=png_path, data=data)


#: Confidence thresholds (percent) whose shares the run report gives.
CONFIDENCE_THRESHOLDS = (50, 70, 90)


def confidence_summary(histogram: Any) -> dict[str, float]:
    """Mean confidence and the share of mapped pixels below each threshold (percent).

    Parameters
    ----------
    histogram : np.ndarray
        Pixel counts of confidence values 0-255 (255 is nodata and not counted).

    >>> import numpy as np
    >>> h = np.zeros(256, int); h[40] = 1; h[80] = 3; h[255] = 9
    >>> confidence_summary(h)["below_50_percent"], confidence_summary(h)["mean_percent"]
    (25.0, 70.0)
    """
    counts = np.asarray(histogram, dtype=np.float64)[:101]
    total = counts.sum()
    if total == 0:
        return {}
    values = np.arange(101)
    summary = {"mean_percent": round(float((counts * values).sum() / total), 2)}
    for threshold in CONFIDENCE_THRESHOLDS:
        below = counts[:threshold].sum() / total * 100
        summary[f"below_{threshold}_percent"] = round(float(below), 2)
    return summary


def _quicklook_title(
    provenance: Provenance | None,
    out_path: str | PathLike[str],
    confidence: Mapping[str, float] | None,
) -> str:
    """The quicklook's title: scene, geoseg version and, if measured, the low-confidence share."""
    title = f"{_title_name(provenance, out_path)} - geoseg {__version__}"
    if confidence:
        title += f"\n{confidence['below_50_percent']:.1f}% of the map below 50% confidence"
    return title


def _title_name(provenance: Provenance | None, out_path: str | PathLike[str]) -> str:
    """The (first) scene's file name, else the output's: never a temporary file's."""
    if provenance is not None and provenance.input_path:
        return Path(provenance.input_path).name
    return Path(out_path).name


def build_report(
    raster: ClassRaster,
    labels: np.ndarray,
    classes: Sequence[ClassInfo],
    result: VectorizeResult | None,
    stage_timings_s: Mapping[str, float],
    *,
    provenance: Provenance | None = None,
    outputs: Mapping[str, str] | None = None,
    raster_label: str | None = None,
) -> dict[str, Any]:
    """The report's content as plain JSON-able data (pure; see :func:`write_run_report`).

    Class areas come from ``result`` (true ground areas of the polygons); without one they are
    estimated from the share of each class among the decimated raster's valid pixels, and the
    report says so in ``area_source``.
    """
    counts = np.bincount(labels.ravel(), minlength=NODATA + 1)[:NODATA]
    valid = int(counts.sum())
    if result is not None:
        rows = _class_rows_from_polygons(classes, result)
        totals: dict[str, Any] = {"area_m2": result.total_area_m2, "polygons": result.polygon_count}
        area_source = "polygons (ground area on the ellipsoid)"
    else:
        rows = _class_rows_from_pixels(classes, counts, valid)
        totals = {"area_m2": None, "polygons": None}
        area_source = "decimated class raster (percentages only)"
    timings = {k: round(float(v), 3) for k, v in stage_timings_s.items()}
    data: dict[str, Any] = {
        "geoseg_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "class_raster": {
            "path": raster.path if raster_label is None else raster_label,
            "width": raster.width,
            "height": raster.height,
            "crs": raster.crs.to_string(),
            "valid_fraction_quicklook": valid / labels.size if labels.size else 0.0,
        },
        "area_source": area_source,
        "classes": rows,
        "totals": totals,
        "timings_s": timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "provenance": None if provenance is None else provenance.to_dict(),
        "outputs": dict(outputs or {}),
    }
    if result is not None:
        data["vectorize"] = _vectorize_settings(result)
    return data


def _class_rows_from_polygons(
    classes: Sequence[ClassInfo], result: VectorizeResult
) -> list[dict[str, Any]]:
    """Each class's ground area, share of the total and polygon count, from the polygons."""
    total = result.total_area_m2
    rows: list[dict[str, Any]] = []
    for info in classes:
        area = float(result.area_m2_per_class.get(info.id, 0.0))
        rows.append(
            {
                "id": info.id,
                "name": info.name,
                "color": info.color,
                "area_m2": area,
                "area_percent": 100.0 * area / total if total > 0 else 0.0,
                "polygons": int(result.polygons_per_class.get(info.id, 0)),
            }
        )
    return rows


def _class_rows_from_pixels(
    classes: Sequence[ClassInfo], counts: np.ndarray, valid: int
) -> list[dict[str, Any]]:
    """Each class's share of the decimated raster's ``valid`` pixels (no areas, no polygons)."""
    rows: list[dict[str, Any]] = []
    for info in classes:
        share = counts[info.id] / valid if valid else 0.0
        rows.append(
            {
                "id": info.id,
                "name": info.name,
                "color": info.color,
                "area_m2": None,
                "area_percent": 100.0 * float(share),
                "polygons": None,
            }
        )
    return rows


def _vectorize_settings(result: VectorizeResult) -> dict[str, Any]:
    """The report's ``vectorize`` section: the layer, its settings and its step timings."""
    return {
        "layer": result.layer,
        "crs": result.crs,
        "min_area_m2": result.min_area_m2,
        "sieve_pixels": result.sieve_pixels,
        "simplify_m": result.simplify_m,
        "block_size": result.block_size,
        "steps_s": {k: round(float(v), 3) for k, v in result.timings_s.items()},
    }


def render_quicklook(
    labels: np.ndarray,
    classes: Sequence[ClassInfo],
    raster: ClassRaster,
    title: str = "",
    shares: Mapping[int, float] | None = None,
) -> Any:
    """A matplotlib ``Figure`` of the (decimated) class map with a legend of the present classes.

    Built on :class:`matplotlib.figure.Figure` with the Agg canvas, never pyplot, so it needs no
    display and leaves no global figure state behind. ``shares`` (percent of the mapped area by
    class id) label the legend; by default the decimated map's pixel shares do.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    lut = np.zeros((NODATA + 1, 4), dtype=np.uint8)  # unknown values and nodata: transparent
    for info in classes:
        lut[info.id] = (*info.rgb, 255)
    counts = np.bincount(labels.ravel(), minlength=NODATA + 1)[:NODATA]
    valid = max(int(counts.sum()), 1)
    if shares is None:
        shares = {c.id: 100.0 * float(counts[c.id]) / valid for c in classes}
    height, width = labels.shape
    left, top = raster.transform @ (0, 0)
    right, bottom = raster.transform @ (raster.width, raster.height)

    aspect = height / max(width, 1)
    figure = Figure(figsize=(10, max(3.0, min(12.0, 7.5 * aspect))))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.set_facecolor("#f4f4f4")
    axes.imshow(
        lut[labels],
        extent=(left, right, bottom, top),
        interpolation="nearest",
        aspect=_aspect(raster, top, bottom),
    )
    units = "degrees" if raster.crs.is_geographic else "metres"
    axes.set_xlabel(f"x ({raster.crs.to_string()}, {units})")
    axes.set_ylabel("y")
    axes.tick_params(labelsize=7)
    axes.ticklabel_format(useOffset=False, style="plain")
    if title:
        axes.set_title(title, fontsize=10)
    handles = [
        Patch(
            facecolor=info.color,
            edgecolor="#555555",
            label=f"{info.id} {info.name} ({_percent(shares.get(info.id, 0.0))})",
        )
        for info in classes
        if counts[info.id] > 0 or shares.get(info.id, 0.0) > 0
    ]
    if handles:
        axes.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize=8,
            title="class (share of mapped area)",
            title_fontsize=8,
            frameon=False,
        )
    return figure


def _percent(value: float) -> str:
    """Percentages for a legend: tiny but present classes do not read as 0.0%."""
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else "<0.1%"


def _aspect(raster: ClassRaster, top: float, bottom: float) -> float:
    """Plot aspect that shows ground shapes undistorted: 1 for projected CRSs, 1/cos(lat) else."""
    if not raster.crs.is_geographic:
        return 1.0
    mid = math.radians(max(-80.0, min(80.0, (top + bottom) / 2)))
    return 1.0 / math.cos(mid)


def _classes(
    classes: Sequence[ClassInfo] | None,
    result: VectorizeResult | None,
    raster: ClassRaster,
    labels: np.ndarray,
) -> tuple[ClassInfo, ...]:
    if classes is not None:
        return tuple(classes)
    if result is not None:
        return result.classes
    if raster.classes:
        return raster.classes
    from geoseg.io.class_raster import color_for

    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=NODATA + 1)[:NODATA])
    return tuple(
        ClassInfo(int(v), f"class {v}", color_for(int(v), raster.colormap)) for v in present
    )
