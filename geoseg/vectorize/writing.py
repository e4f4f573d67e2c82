"""Writing vectorized polygons as the styled ``landcover`` layer of a GeoPackage.

Polygons are stored batch by batch as they arrive; the classes written (and styled) are the
declared ones plus a generic class for any other value present, and the run's provenance gains the
vectorize settings.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from geoseg.core import LAYER, NODATA
from geoseg.errors import VectorizeError
from geoseg.io.class_raster import color_for, read_classes_file
from geoseg.io.geopackage import LandcoverWriter
from geoseg.models.card import ClassInfo
from geoseg.provenance import Provenance
from geoseg.styles import landcover_style
from geoseg.vectorize.batches import Polygons
from geoseg.vectorize.geodesy import crs_label, reproject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerSpec:
    """What a polygon layer is: its classes, what it was made from and what it carries.

    Parameters
    ----------
    classes : tuple of ClassInfo
        Declared classes; a value they do not name gets a generic class colored by
        ``colormap``.
    source : str
        What the layer was made from (the class raster, or the scene ``predict`` read), for
        messages and the layer description.
    provenance : Provenance
        Provenance of the run; the vectorize settings are added to it.
    allowed_ids : frozenset of int or None
        The class values the raster may hold: another raises :class:`VectorizeError` at the
        first block holding it. ``None``: any.
    colormap : Mapping[int, tuple[int, int, int]] or None
        The raster's color table (colors the generic classes).
    fields : Mapping[str, str], optional
        Text fields with one value for every polygon (``source_scene``, ``acquired``).
    """

    classes: tuple[ClassInfo, ...]
    source: str
    provenance: Provenance
    allowed_ids: frozenset[int] | None = None
    colormap: Mapping[int, tuple[int, int, int]] | None = None
    fields: Mapping[str, str] | None = None


@dataclass(frozen=True)
class VectorizeResult:
    """What :func:`vectorize_raster` wrote.

    Parameters
    ----------
    path : Path
        The GeoPackage.
    layer : str
        Its polygon layer.
    crs : str
        CRS of the geometry (``EPSG:n`` where it has one, else WKT).
    classes : tuple of ClassInfo
        Classes named in the layer and its style, by id.
    polygon_count : int
        Features written.
    polygons_per_class : Mapping[int, int]
        Features per class id (every class in ``classes``, zero if absent).
    area_m2_per_class : Mapping[int, float]
        Ground area per class id, square metres.
    min_area_m2, simplify_m : float
        The sieve and simplification settings used.
    sieve_pixels : int
        ``min_area_m2`` in pixels at the raster's centre.
    block_size : int
        Processing block side, pixels.
    timings_s : Mapping[str, float]
        Seconds per step (``read``, ``sieve``, ``polygonize``, ``simplify``, ``merge``, ``area``,
        ``reproject``, ``write``) and ``total``.
    """

    path: Path
    layer: str
    crs: str
    classes: tuple[ClassInfo, ...]
    polygon_count: int
    polygons_per_class: Mapping[int, int]
    area_m2_per_class: Mapping[int, float]
    min_area_m2: float
    simplify_m: float
    sieve_pixels: int
    block_size: int
    timings_s: Mapping[str, float]

    @property
    def total_area_m2(self) -> float:
        """Ground area of all polygons, square metres."""
        return float(sum(self.area_m2_per_class.values()))


def write_polygons(
    batches: Iterable[Polygons],
    out: Path,
    *,
    crs: CRS,
    layer: LayerSpec,
    dst_crs: CRS | None,
    overwrite: bool,
    started: float,
) -> VectorizeResult:
    """Write vectorized polygons, batch by batch, as the styled ``landcover`` layer of a GeoPackage.

    Each batch is stored as it arrives (from :func:`polygon_batches`, they arrive while later
    blocks are still being vectorized), so the polygons of a scene are never all in memory.

    Parameters
    ----------
    batches : iterable of Polygons
        From :func:`polygon_batches` (or one :class:`Polygons`, in a list).
    out : Path
        GeoPackage to write (atomically).
    crs : CRS
        CRS of the polygons.
    layer : LayerSpec
        The layer's classes, source, color table, provenance and fields (its ``allowed_ids``
        are the batches' concern).
    dst_crs : CRS or None
        Reproject to this CRS on purpose.
    overwrite : bool
        Replace an existing ``out``.
    started : float
        ``time.perf_counter()`` when the vectorisation started, for the ``total`` timing.

    Returns
    -------
    VectorizeResult
    """
    timings: dict[str, float] = defaultdict(float)
    source = layer.source
    out_crs = crs_label(dst_crs or crs)
    with _open_layer(out, out_crs, source, overwrite, layer.fields) as writer:
        totals = _append_batches(writer, batches, crs, dst_crs, layer.classes, timings)
        if totals.first is None:
            raise VectorizeError(f"nothing was vectorized from {source}")
        first = totals.first
        resolved = _resolve_classes(layer.classes, totals.present_ids(), layer.colormap, source)
        _finish_layer(writer, resolved, _with_settings(layer.provenance, first, dst_crs), timings)
    timings["total"] = time.perf_counter() - started
    result = VectorizeResult(
        path=out,
        layer=LAYER,
        crs=out_crs,
        classes=resolved,
        polygon_count=writer.features,
        polygons_per_class={c.id: int(totals.counts[c.id]) for c in resolved},
        area_m2_per_class={c.id: float(totals.areas[c.id]) for c in resolved},
        min_area_m2=first.min_area_m2,
        simplify_m=first.simplify_m,
        sieve_pixels=first.sieve_pixels,
        block_size=first.block_size,
        timings_s=dict(timings),
    )
    log.info(
        "vectorized %s: %d polygons, %.0f m2, %.1f s",
        source,
        result.polygon_count,
        result.total_area_m2,
        timings["total"],
    )
    return result


@dataclass
class _LayerTotals:
    """What the batches written so far add up to.

    Parameters
    ----------
    counts : np.ndarray
        Polygons written per class id (index 0-254).
    areas : np.ndarray
        Ground area written per class id, square metres.
    first : Polygons or None
        The first batch (its settings are the run's); ``None`` until one is written.
    """

    counts: np.ndarray = field(default_factory=lambda: np.zeros(NODATA, dtype=np.int64))
    areas: np.ndarray = field(default_factory=lambda: np.zeros(NODATA, dtype=np.float64))
    first: Polygons | None = None

    def add(self, polygons: Polygons, ids: np.ndarray) -> None:
        """Count a written batch whose class ids (int64) are ``ids``."""
        self.first = self.first or polygons
        self.counts += np.bincount(ids, minlength=NODATA)[:NODATA]
        self.areas += np.bincount(ids, weights=polygons.area_m2, minlength=NODATA)[:NODATA]

    def present_ids(self) -> set[int]:
        """Class ids with at least one polygon written."""
        return {int(v) for v in np.flatnonzero(self.counts)}


def _open_layer(
    out: Path, out_crs: str, source: str, overwrite: bool, fields: Mapping[str, str] | None
) -> LandcoverWriter:
    """A writer of the ``landcover`` layer, described as made from ``source``."""
    return LandcoverWriter(
        out,
        out_crs,
        layer=LAYER,
        description=(
            f"Land cover vectorized by geoseg from {Path(source).name}; area_m2 is each "
            "polygon's geodesic area on its CRS's ellipsoid (true ground area, not the planar "
            "area of the CRS)"
        ),
        overwrite=overwrite,
        fields=fields,
    )


def _append_batches(
    writer: LandcoverWriter,
    batches: Iterable[Polygons],
    crs: CRS,
    dst_crs: CRS | None,
    classes: tuple[ClassInfo, ...],
    timings: dict[str, float],
) -> _LayerTotals:
    """Append each batch to the layer as it comes (reprojected if asked); their totals.

    The batches' own timings, and the reprojection and write times, are added to ``timings``.
    """
    names_by_id = {c.id: c.name for c in classes}
    totals = _LayerTotals()
    for polygons in batches:
        for step, seconds in polygons.timings_s.items():
            timings[step] += seconds
        geometries = polygons.geometries
        if dst_crs is not None and len(geometries):
            t0 = time.perf_counter()
            geometries = reproject(geometries, crs, dst_crs)
            timings["reproject"] += time.perf_counter() - t0
        ids = polygons.class_ids.astype(np.int64)
        # a value the classes do not name gets the generic name _resolve_classes gives it
        names = np.array([names_by_id.get(int(i), f"class {i}") for i in ids], dtype=object)
        t0 = time.perf_counter()
        writer.append(geometries, ids, names, polygons.area_m2)
        timings["write"] += time.perf_counter() - t0
        totals.add(polygons, ids)
    return totals


def _with_settings(provenance: Provenance, first: Polygons, dst_crs: CRS | None) -> Provenance:
    """``provenance`` with the vectorize settings (those of the ``first`` batch) added."""
    parameters = {
        "min_area_m2": first.min_area_m2,
        "simplify_m": first.simplify_m,
        "block_size": first.block_size,
        "sieve_pixels": first.sieve_pixels,
        "dst_crs": None if dst_crs is None else crs_label(dst_crs),
    }
    return replace(provenance, parameters={**dict(provenance.parameters), "vectorize": parameters})


def _finish_layer(
    writer: LandcoverWriter,
    classes: tuple[ClassInfo, ...],
    provenance: Provenance,
    timings: dict[str, float],
) -> None:
    """Store the layer's style and metadata (provenance, classes); the time goes to ``write``."""
    t0 = time.perf_counter()
    writer.finish(
        landcover_style(classes, LAYER),
        {
            "GEOSEG_PROVENANCE": provenance.to_json(),
            "GEOSEG_CLASSES": json.dumps([c.__dict__ for c in classes]),
        },
    )
    timings["write"] += time.perf_counter() - t0


def declared_classes(
    classes: Sequence[ClassInfo] | str | PathLike[str] | None,
    from_raster: tuple[ClassInfo, ...] | None,
) -> tuple[tuple[ClassInfo, ...], bool]:
    """Classes asked for and whether raster values outside them are an error."""
    if classes is None:
        return (from_raster or ()), False
    if isinstance(classes, str | PathLike):
        return read_classes_file(classes), True
    declared = tuple(classes)
    ids = [c.id for c in declared]
    if not declared or len(set(ids)) != len(ids):
        raise VectorizeError(f"classes must be non-empty with unique ids, got ids {ids}")
    return declared, True


def _resolve_classes(
    declared: tuple[ClassInfo, ...],
    present: set[int],
    colormap: Mapping[int, tuple[int, int, int]] | None,
    name: str,
) -> tuple[ClassInfo, ...]:
    """Declared classes plus a generic class (color-table color) for any other present value."""
    known = {c.id for c in declared}
    extra = sorted(present - known)
    if extra and declared:
        log.warning("class raster %s holds values %s its classes do not name", name, extra)
    generic = tuple(ClassInfo(v, f"class {v}", color_for(v, colormap)) for v in extra)
    return tuple(sorted(declared + generic, key=lambda c: c.id))


def resolve_provenance(
    given: Provenance | None, raster_tag: str | None, input_path: str
) -> Provenance:
    """The run's provenance: the one given, else the raster's tag, else a bare one."""
    prov = given
    if prov is None and raster_tag:
        try:
            data = json.loads(raster_tag)
            prov = Provenance(
                model_name=str(data.get("model_name", "")),
                model_sha256=str(data.get("model_sha256", "")),
                input_path=str(data.get("input_path", input_path)),
                parameters=dict(data.get("parameters", {})),
            )
        except (ValueError, AttributeError, TypeError):
            log.warning("ignoring malformed provenance tag of %s", input_path)
    if prov is None:
        prov = Provenance(model_name="", model_sha256="", input_path=input_path)
    return prov
