"""Coordinates and ground areas: pixel to CRS coordinates, reprojection, ellipsoidal areas, CRSs.

Polygons are built in pixel coordinates and mapped to the raster's CRS only once final
(:func:`to_crs_coordinates`); they are measured on the CRS's ellipsoid (:func:`ground_area_m2`),
so areas are true ground areas in geographic CRSs and in projections that distort area.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError

from geoseg.errors import VectorizeError

#: Longest segment (metres) used when measuring areas of projected geometry on the ellipsoid.
_AREA_SEGMENT_M = 1000.0


def to_crs_coordinates(geoms: np.ndarray, transform: Affine) -> np.ndarray:
    """Map pixel-coordinate geometries through ``transform`` (shared vertices stay shared)."""
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack((a * x + b * y + c, d * x + e * y + f))

    result: np.ndarray = shapely.transform(geoms, apply)
    return result


def reproject(geoms: np.ndarray, src_crs: CRS, dst_crs: CRS) -> np.ndarray:
    """Transform polygons vertex by vertex to ``dst_crs`` and repair any made invalid.

    Shared vertices map to equal coordinates, so the partition survives the transformation.
    """
    from pyproj import Transformer

    transformer = Transformer.from_crs(pyproj_crs(src_crs), pyproj_crs(dst_crs), always_xy=True)

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))

    moved: np.ndarray = shapely.transform(geoms, apply)
    invalid = ~shapely.is_valid(moved)
    if invalid.any():
        moved = moved.copy()
        moved[invalid] = shapely.make_valid(moved[invalid], method="structure")
    return moved


def ground_area_m2(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """True ground area of each polygon on the ellipsoid of ``crs``, square metres.

    A polygon's edges are straight lines *in its CRS* (as GIS software draws them), so in a
    geographic CRS an edge along a pixel row follows a parallel, not a geodesic. The area is
    therefore integrated exactly for such edges rather than with geodesic edges: by Green's
    theorem on the ellipsoid, a ring encloses ``a**2 / 2 * |sum(q(lat) dlon)|`` where ``q`` is
    the authalic-latitude function. The sum is exact along parallels and meridians (every edge of
    a pixel outline in a geographic CRS), and Simpson's rule makes it exact to ~1e-9 on the
    diagonal edges left by simplification. Projected geometry is split into segments of at most 1 km
    before its vertices are taken to longitude/latitude, so curved images of straight edges are
    followed too. Vectorized over all vertices; cross-checked against :class:`pyproj.Geod` in
    the tests.

    Parameters
    ----------
    geoms : np.ndarray
        Polygons in ``crs`` (geographic CRSs in degrees).
    crs : CRS
        Their CRS.

    Returns
    -------
    np.ndarray
        Areas (float64), one per geometry.
    """
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return np.zeros(0)
    pcrs = pyproj_crs(crs)
    geod = pcrs.get_geod()
    if geod is None:
        raise VectorizeError(f"CRS {crs_label(crs)} has no ellipsoid: ground areas are undefined")
    if not pcrs.is_geographic:
        from pyproj import Transformer

        unit = pcrs.axis_info[0].unit_conversion_factor or 1.0
        geoms = _split_long_edges(geoms, _AREA_SEGMENT_M / unit)
        to_lonlat = Transformer.from_crs(pcrs, pcrs.geodetic_crs, always_xy=True)

        def apply(xy: np.ndarray) -> np.ndarray:
            lon, lat = to_lonlat.transform(xy[:, 0], xy[:, 1])
            return np.column_stack((lon, lat))

        geoms = shapely.transform(geoms, apply)
    rings, owner = shapely.get_rings(geoms, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    lon = np.radians(coords[:, 0])
    lat = np.radians(coords[:, 1])
    e = math.sqrt(geod.es)
    q = _authalic_q(np.sin(lat), e)
    q_mid = _authalic_q(np.sin(0.5 * (lat[1:] + lat[:-1])), e)
    same_ring = ring_of[1:] == ring_of[:-1]
    # wrap so an edge crossing the antimeridian counts its short way round
    dlon = (lon[1:] - lon[:-1] + math.pi) % (2 * math.pi) - math.pi
    # Simpson's rule along each edge (latitude linear in longitude): exact on parallels and
    # meridians, and within 1e-9 on diagonal edges of a degree
    terms = np.where(same_ring, (q[1:] + 4.0 * q_mid + q[:-1]) * dlon / 6.0, 0.0)
    ring_sum = np.bincount(ring_of[:-1], weights=terms, minlength=len(rings))
    ring_area = np.abs(ring_sum) * geod.a**2 / 2.0
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = owner[1:] != owner[:-1]
    signed = np.where(exterior, ring_area, -ring_area)
    area: np.ndarray = np.bincount(owner, weights=signed, minlength=len(geoms))
    return area


def _split_long_edges(geoms: np.ndarray, max_length: float) -> np.ndarray:
    """``shapely.segmentize``, run only on the polygons that have an edge longer than the limit.

    Simplified pixel outlines rarely have one, and segmentizing every polygon is a third of the
    time spent measuring areas.
    """
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    edge = np.hypot(*np.diff(coords, axis=0).T)
    # consecutive vertices of two polygons are no edge (those of two rings of one polygon are
    # counted, which can only segmentize a polygon needlessly)
    long_edge = (edge > max_length) & (owner[1:] == owner[:-1])
    if not long_edge.any():
        return geoms
    out = geoms.copy()
    needs = np.unique(owner[1:][long_edge])
    out[needs] = shapely.segmentize(geoms[needs], max_length)
    return out


def _authalic_q(sin_lat: np.ndarray, e: float) -> np.ndarray:
    """``q(lat)``: twice the area from the equator to ``lat`` per radian, in units of ``a**2``."""
    if e < 1e-12:
        result: np.ndarray = 2.0 * sin_lat
        return result
    es = e * e
    result = (1 - es) * (sin_lat / (1 - es * sin_lat**2) + np.arctanh(e * sin_lat) / e)
    return result


def pixel_area_m2(crs: CRS, transform: Affine, col: float, row: float) -> float:
    """Ground area of the pixel whose corner is nearest ``(col, row)``, square metres."""
    c, r = math.floor(col), math.floor(row)
    corners = [transform @ (c + dx, r + dy) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
    if pyproj_crs(crs).is_geographic:
        # keep the pixel on the globe at the poles
        corners = [(x, max(-90.0, min(90.0, y))) for x, y in corners]
    return float(ground_area_m2(np.array([shapely.Polygon(corners)], dtype=object), crs)[0])


def crs_label(crs: CRS) -> str:
    """``EPSG:n`` when the CRS is exactly an EPSG one, else its WKT."""
    code = crs.to_epsg()
    return f"EPSG:{code}" if code else str(crs.to_wkt())


def pyproj_crs(crs: CRS | str) -> Any:
    """The :class:`pyproj.CRS` of a rasterio CRS or of user input."""
    from pyproj import CRS as ProjCRS

    return ProjCRS.from_user_input(crs.to_wkt() if isinstance(crs, CRS) else crs)


def parse_crs(value: str | CRS | None) -> CRS | None:
    """A CRS from user input (``None`` stays ``None``), or a one-line :class:`VectorizeError`."""
    if value is None or isinstance(value, CRS):
        return value
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise VectorizeError(
            f"destination CRS {value!r} is not understood: use e.g. EPSG:4326 or a WKT/PROJ string"
        ) from exc
