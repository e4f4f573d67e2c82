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
from dataclasses import dataclass, replace
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
    classes: tuple[ClassInfo, ...],
    source: str,
    colormap: Mapping[int, tuple[int, int, int]] | None,
    provenance: Provenance,
    dst_crs: CRS | None,
    overwrite: bool,
    started: float,
    fields: Mapping[str, str] | None = None,
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
    classes : tuple of ClassInfo
        Declared classes; a value they do not name gets a generic class colored by
        ``colormap``.
    source : str
        The class raster's name, for messages and the layer description.
    colormap : mapping or None
        The raster's color table.
    provenance : Provenance
        Provenance of the run; the vectorize settings are added to it.
    dst_crs : CRS or None
        Reproject to this CRS on purpose.
    overwrite : bool
        Replace an existing ``out``.
    started : float
        ``time.perf_counter()`` when the vectorisation started, for the ``total`` timing.
    fields : Mapping[str, str], optional
        Text fields with one value for every polygon (``source_scene``, ``acquired``).

    Returns
    -------
    VectorizeResult
    """
    timings: dict[str, float] = defaultdict(float)
    names_by_id = {c.id: c.name for c in classes}
    counts = np.zeros(NODATA, dtype=np.int64)
    areas = np.zeros(NODATA, dtype=np.float64)
    first: Polygons | None = None
    out_crs = crs_label(dst_crs or crs)
    with LandcoverWriter(
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
    ) as writer:
        for polygons in batches:
            first = first or polygons
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
            counts += np.bincount(ids, minlength=NODATA)[:NODATA]
            areas += np.bincount(ids, weights=polygons.area_m2, minlength=NODATA)[:NODATA]
        if first is None:
            raise VectorizeError(f"nothing was vectorized from {source}")
        present = {int(v) for v in np.flatnonzero(counts)}
        resolved = _resolve_classes(classes, present, colormap, source)
        parameters = {
            "min_area_m2": first.min_area_m2,
            "simplify_m": first.simplify_m,
            "block_size": first.block_size,
            "sieve_pixels": first.sieve_pixels,
            "dst_crs": None if dst_crs is None else crs_label(dst_crs),
        }
        prov = replace(
            provenance, parameters={**dict(provenance.parameters), "vectorize": parameters}
        )
        t0 = time.perf_counter()
        writer.finish(
            landcover_style(resolved, LAYER),
            {
                "GEOSEG_PROVENANCE": prov.to_json(),
                "GEOSEG_CLASSES": json.dumps([c.__dict__ for c in resolved]),
            },
        )
        timings["write"] += time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    result = VectorizeResult(
        path=out,
        layer=LAYER,
        crs=out_crs,
        classes=resolved,
        polygon_count=writer.features,
        polygons_per_class={c.id: int(counts[c.id]) for c in resolved},
        area_m2_per_class={c.id: float(areas[c.id]) for c in resolved},
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
