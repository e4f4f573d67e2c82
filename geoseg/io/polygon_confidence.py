"""Each polygon's mean confidence, added to a finished land-cover GeoPackage.

The polygons are burnt, strip by strip, onto the confidence raster's grid (each by its feature
id, in the raster's CRS), and the confidence under each is summed with :func:`numpy.bincount`,
so memory follows a strip of rows and the polygons of that strip, not the scene. The mean goes in
a ``confidence`` column (percent, the pixels' mean; NULL for a polygon that covers no pixel
centre) written with :mod:`sqlite3` into the GeoPackage before it is renamed into place.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window

from geoseg.core import NODATA

#: Rows of the confidence raster burnt at a time.
STRIP_ROWS = 1024
#: The column added to the layer.
CONFIDENCE_FIELD = "confidence"


def add_mean_confidence(gpkg: Path, layer: str, confidence: Path) -> int:
    """Add each polygon's mean confidence to ``layer`` of ``gpkg``.

    Parameters
    ----------
    gpkg : Path
        The GeoPackage (a temporary file of the run; changed in place).
    layer : str
        The polygon layer.
    confidence : Path
        The run's confidence raster (uint8 percent, nodata 255).

    Returns
    -------
    int
        Polygons that got a value.
    """
    table = pyogrio.read_dataframe(gpkg, layer=layer, columns=[], fid_as_index=True)
    if table.empty:
        _write_column(gpkg, layer, np.empty(0, np.int64), np.empty(0))
        return 0
    with rasterio.open(confidence) as src:
        if table.crs is not None and src.crs is not None and table.crs != src.crs:
            table = table.to_crs(src.crs)
        geoms = table.geometry.to_numpy()
        fids = table.index.to_numpy(np.int64)
        order = np.arange(len(fids))
        sums = np.zeros(len(fids), np.float64)
        counts = np.zeros(len(fids), np.int64)
        bounds = shapely.bounds(geoms)
        for start in range(0, src.height, STRIP_ROWS):
            rows = min(STRIP_ROWS, src.height - start)
            window = Window(0, start, src.width, rows)
            strip_transform = src.window_transform(window)
            top = strip_transform.f
            bottom = top + strip_transform.e * rows
            low, high = min(top, bottom), max(top, bottom)
            inside = (bounds[:, 1] <= high) & (bounds[:, 3] >= low)
            if not inside.any():
                continue
            values = src.read(1, window=window)
            # 0 is "no polygon": burn positions + 1
            burnt = rasterize(
                zip(geoms[inside], order[inside] + 1, strict=True),
                out_shape=(rows, src.width),
                transform=strip_transform,
                fill=0,
                dtype="int32",
            )
            keep = (burnt > 0) & (values != NODATA)
            index = burnt[keep] - 1
            sums += np.bincount(index, weights=values[keep], minlength=len(fids))
            counts += np.bincount(index, minlength=len(fids))
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    _write_column(gpkg, layer, fids, means)
    return int((counts > 0).sum())


def _write_column(gpkg: Path, layer: str, fids: np.ndarray, means: np.ndarray) -> None:
    connection = sqlite3.connect(gpkg)
    _add_geometry_functions(connection)
    try:
        with connection:
            # the fid column of a GDAL-written layer is its INTEGER PRIMARY KEY
            key = next(
                row[1] for row in connection.execute(f'PRAGMA table_info("{layer}")') if row[5] == 1
            )
            connection.execute(f'ALTER TABLE "{layer}" ADD COLUMN "{CONFIDENCE_FIELD}" REAL')
            connection.executemany(
                f'UPDATE "{layer}" SET "{CONFIDENCE_FIELD}" = ? WHERE "{key}" = ?',
                (
                    (None if np.isnan(m) else round(float(m), 1), int(f))
                    for f, m in zip(fids, means, strict=True)
                ),
            )
            _register_column(connection, layer)
    finally:
        connection.close()


def _add_geometry_functions(connection: sqlite3.Connection) -> None:
    """The SQL functions the layer's R-tree triggers name (GDAL provides them, sqlite3 does not).

    The triggers that run on an attribute update only act when a feature id changes, which
    never happens here, but SQLite must know every function a trigger names. These read the
    GeoPackage geometry header, so they are right should they ever run.
    """

    def envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
        if blob is None or len(blob) < 8 or blob[:2] != b"GP":
            return None
        flags = blob[3]
        if flags & 0b10000:  # the empty-geometry flag
            return None
        order = "<" if flags & 1 else ">"
        if (flags >> 1) & 0b111:
            minx, maxx, miny, maxy = struct.unpack_from(f"{order}4d", blob, 8)
            return minx, maxx, miny, maxy
        size = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get((flags >> 1) & 0b111, 0)
        geometry = shapely.from_wkb(bytes(blob[8 + size :]))
        if geometry is None or geometry.is_empty:
            return None
        x0, y0, x1, y1 = geometry.bounds
        return x0, x1, y0, y1

    def part(index: int) -> Callable[[bytes | None], float | None]:
        def value(blob: bytes | None) -> float | None:
            box = envelope(blob)
            return None if box is None else box[index]

        return value

    connection.create_function(
        "ST_IsEmpty", 1, lambda blob: int(envelope(blob) is None), deterministic=True
    )
    for index, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        connection.create_function(name, 1, part(index), deterministic=True)


def _register_column(connection: sqlite3.Connection, layer: str) -> None:
    """Say what the column holds where GeoPackage readers look (the schema extension table)."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gpkg_data_columns'"
    ).fetchone()
    if not exists:
        return
    connection.execute(
        "INSERT OR REPLACE INTO gpkg_data_columns (table_name, column_name, name, title, "
        "description) VALUES (?, ?, ?, ?, ?)",
        (
            layer,
            CONFIDENCE_FIELD,
            CONFIDENCE_FIELD,
            "mean confidence (%)",
            "mean over the polygon's pixels of the probability of its class, in percent",
        ),
    )
