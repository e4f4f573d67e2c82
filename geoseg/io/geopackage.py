"""Writing the land-cover GeoPackage: polygons, provenance metadata and a default QGIS style.

Everything is written to a temporary sibling and renamed at the end (:func:`atomic_output`), so a
failed run leaves nothing behind and readers never see a half-written file. The features go in
with one pyogrio call (one transaction); the style row is added with :mod:`sqlite3` to the
temporary file before the rename, into the ``layer_styles`` table exactly as QGIS itself creates
it, registered in ``gpkg_contents`` as an attributes table so that GDAL and QGIS list it.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import OutputError
from geoseg.io.atomic import atomic_output
from geoseg.styles import LayerStyle

#: Name of the geometry column (GDAL's GeoPackage default, named explicitly for the style row).
GEOMETRY_COLUMN = "geom"
STYLE_TABLE = "layer_styles"

# The table as QGIS (QgsOgrProviderUtils::saveStyle) creates it in a GeoPackage.
_CREATE_STYLE_TABLE = f"""
CREATE TABLE IF NOT EXISTS "{STYLE_TABLE}" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "f_table_catalog" TEXT(256),
    "f_table_schema" TEXT(256),
    "f_table_name" TEXT(256),
    "f_geometry_column" TEXT(256),
    "styleName" TEXT(30),
    "styleQML" TEXT,
    "styleSLD" TEXT,
    "useAsDefault" BOOLEAN,
    "description" TEXT,
    "owner" TEXT(30),
    "ui" TEXT(30),
    "update_time" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)
"""


def write_landcover(
    path: Path,
    geometries: np.ndarray,
    class_ids: np.ndarray,
    class_names: np.ndarray,
    area_m2: np.ndarray,
    crs: str,
    *,
    layer: str = "landcover",
    style: LayerStyle | None = None,
    metadata: Mapping[str, str] | None = None,
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Write polygons with ``class_id``, ``class_name``, ``area_m2`` to a new GeoPackage.

    Parameters
    ----------
    path : Path
        The GeoPackage.
    geometries : np.ndarray
        Shapely polygons.
    class_ids, class_names, area_m2 : np.ndarray
        Attributes, one per polygon.
    crs : str
        CRS of the geometry (``EPSG:n`` or WKT).
    layer : str
        Layer name.
    style : LayerStyle or None
        Default style stored in ``layer_styles``.
    metadata : Mapping[str, str] or None
        Layer metadata items (GDAL stores them in ``gpkg_metadata``), e.g. provenance JSON.
    description : str
        Layer description in ``gpkg_contents``.
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    OutputError
        If the file cannot be written, or exists and ``overwrite`` is false.
    """
    import geopandas as gpd
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    frame = gpd.GeoDataFrame(
        {
            "class_id": np.asarray(class_ids, dtype=np.int32),
            "class_name": np.asarray(class_names, dtype=object),
            "area_m2": np.asarray(area_m2, dtype=np.float64),
        },
        geometry=gpd.GeoSeries(np.asarray(geometries, dtype=object), crs=crs),
    )
    with atomic_output(path, overwrite) as tmp:
        try:
            pyogrio.write_dataframe(
                frame,
                tmp,
                layer=layer,
                driver="GPKG",
                geometry_type="Polygon",
                layer_metadata=dict(metadata or {}),
                # 1.2 rather than GDAL's default 1.4: GDAL < 3.7 (QGIS 3.22 in Debian 12 and
                # other long-term releases) warns that 1.4 "may only be partially supported"
                dataset_options={"VERSION": "1.2"},
                layer_options={
                    "GEOMETRY_NAME": GEOMETRY_COLUMN,
                    "SPATIAL_INDEX": "YES",
                    "IDENTIFIER": layer,
                    "DESCRIPTION": description,
                },
            )
            if style is not None:
                add_default_style(tmp, layer, style)
        except (DataSourceError, DataLayerError, OSError, sqlite3.Error) as exc:
            raise OutputError(f"cannot write GeoPackage {path}: {_first_line(exc)}") from exc


def add_default_style(gpkg: Path, layer: str, style: LayerStyle) -> None:
    """Store ``style`` as the default style of ``layer`` in the GeoPackage's ``layer_styles``."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    connection = sqlite3.connect(gpkg)
    try:
        with connection:  # one transaction: the table, its registration and the row, or nothing
            connection.execute(_CREATE_STYLE_TABLE)
            registered = connection.execute(
                "SELECT 1 FROM gpkg_contents WHERE table_name = ?", (STYLE_TABLE,)
            ).fetchone()
            if registered is None:
                connection.execute(
                    "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                    "last_change) VALUES (?, 'attributes', ?, '', ?)",
                    (STYLE_TABLE, STYLE_TABLE, now),
                )
                if _has_table(connection, "gpkg_ogr_contents"):
                    connection.execute(
                        "INSERT INTO gpkg_ogr_contents (table_name, feature_count) VALUES (?, 0)",
                        (STYLE_TABLE,),
                    )
            connection.execute(
                f'UPDATE "{STYLE_TABLE}" SET useAsDefault = 0 WHERE f_table_name = ?', (layer,)
            )
            connection.execute(
                f'INSERT INTO "{STYLE_TABLE}" (f_table_catalog, f_table_schema, f_table_name, '
                "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
                "owner, ui, update_time) VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, 'geoseg', NULL, ?)",
                (layer, GEOMETRY_COLUMN, style.name, style.qml, style.sld, style.description, now),
            )
            if _has_table(connection, "gpkg_ogr_contents"):
                connection.execute(
                    "UPDATE gpkg_ogr_contents SET feature_count = "
                    f'(SELECT COUNT(*) FROM "{STYLE_TABLE}") WHERE table_name = ?',
                    (STYLE_TABLE,),
                )
    finally:
        connection.close()


def read_default_style(gpkg: Path, layer: str = "landcover") -> dict[str, Any] | None:
    """The default ``layer_styles`` row of ``layer`` as a dict, or ``None`` if there is none."""
    if not gpkg.is_file():
        raise OutputError(f"GeoPackage {gpkg} does not exist")
    connection = sqlite3.connect(f"file:{gpkg}?mode=ro", uri=True)
    try:
        connection.row_factory = sqlite3.Row
        if not _has_table(connection, STYLE_TABLE):
            return None
        row = connection.execute(
            f'SELECT * FROM "{STYLE_TABLE}" WHERE f_table_name = ? AND useAsDefault '
            "ORDER BY update_time DESC LIMIT 1",
            (layer,),
        ).fetchone()
        return None if row is None else dict(row)
    finally:
        connection.close()


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    row = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
