"""Writing the land-cover GeoPackage: polygons, provenance metadata and a default QGIS style.

Everything is written to a temporary sibling and renamed at the end (:func:`atomic_output`), so a
failed run leaves nothing behind and readers never see a half-written file. The features go in
batch by batch as they are produced (one pyogrio call and transaction each); the style row is
added with :mod:`sqlite3` to the temporary file before the rename, into the ``layer_styles``
table exactly as QGIS itself creates it, registered in ``gpkg_contents`` as an attributes table
so that GDAL and QGIS list it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from geoseg.core import first_line
from geoseg.errors import OutputError
from geoseg.io.atomic import atomic_output
from geoseg.styles import LayerStyle

#: Name of the geometry column (GDAL's GeoPackage default, named explicitly for the style row).
GEOMETRY_COLUMN = "geom"
STYLE_TABLE = "layer_styles"
#: The boolean field an analyst sets on polygons they checked (false as written).
REVIEWED_FIELD = "reviewed"
#: Vertices per write of a batch (about 16 bytes each in the encoded copy pyogrio makes).
CHUNK_VERTICES = 1_000_000

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


class LandcoverWriter:
    """Write polygons to a new GeoPackage layer in batches, as they are produced.

    Polygons need not be held until the end: each :meth:`append` adds a batch in its own
    transaction. :meth:`finish` adds the layer metadata and the default style. Everything goes to
    a temporary sibling that is renamed into place only when the context exits after
    :meth:`finish`; on error, or without :meth:`finish`, nothing is left behind.

    Parameters
    ----------
    path : Path
        The GeoPackage.
    crs : str
        CRS of the geometry (``EPSG:n`` or WKT).
    layer : str
        Layer name.
    description : str
        Layer description in ``gpkg_contents``.
    overwrite : bool
        Replace an existing file.
    fields : Mapping[str, str]
        Text fields with the same value on every polygon (the source scene, its acquisition
        date), after ``area_m2``.
    """

    def __init__(
        self,
        path: Path,
        crs: str,
        *,
        layer: str = "landcover",
        description: str = "",
        overwrite: bool = False,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.crs = crs
        self.layer = layer
        self.description = description
        self.overwrite = overwrite
        self.fields = dict(fields or {})
        self.features = 0
        self._tmp: Path | None = None
        self._finished = False
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LandcoverWriter:
        self._tmp = self._stack.enter_context(atomic_output(self.path, self.overwrite))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None and not self._finished:
            unfinished = OutputError(f"GeoPackage {self.path} was left unfinished")
            self._stack.__exit__(OutputError, unfinished, None)  # deletes the temporary
            raise unfinished
        # on success atomic_output renames the temporary into place; on error it deletes it
        self._stack.__exit__(exc_type, exc, tb)

    def append(
        self,
        geometries: np.ndarray,
        class_ids: np.ndarray,
        class_names: np.ndarray,
        area_m2: np.ndarray,
    ) -> None:
        """Add a batch of polygons with their ``class_id``, ``class_name`` and ``area_m2``.

        Large batches go in chunks of about :data:`CHUNK_VERTICES` vertices, which bounds the
        memory of their encoded copy.
        """
        if not len(geometries):
            return
        import shapely

        vertices = np.cumsum(shapely.get_num_coordinates(np.asarray(geometries, dtype=object)))
        ends = np.searchsorted(vertices, np.arange(CHUNK_VERTICES, vertices[-1], CHUNK_VERTICES))
        bounds = [0, *sorted({int(e) + 1 for e in ends} - {0, len(geometries)}), len(geometries)]
        for a, b in itertools.pairwise(bounds):
            self._write(
                self._frame(geometries[a:b], class_ids[a:b], class_names[a:b], area_m2[a:b]), None
            )

    def finish(self, style: LayerStyle | None, metadata: Mapping[str, str] | None) -> None:
        """Store the layer ``metadata`` (e.g. provenance JSON) and the default ``style``."""
        empty = np.empty(0, dtype=object)
        self._write(self._frame(empty, empty, empty, empty), dict(metadata or {}))
        if style is not None:
            try:
                add_default_style(self._temporary, self.layer, style)
            except (OSError, sqlite3.Error) as exc:
                message = f"cannot write GeoPackage {self.path}: {first_line(exc)}"
                raise OutputError(message) from exc
        self._finished = True

    @property
    def _temporary(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("LandcoverWriter is used outside its with block")
        return self._tmp

    def _frame(
        self,
        geometries: np.ndarray,
        class_ids: np.ndarray,
        class_names: np.ndarray,
        area_m2: np.ndarray,
    ) -> Any:
        import geopandas as gpd

        columns: dict[str, Any] = {
            "class_id": np.asarray(class_ids, dtype=np.int32),
            "class_name": np.asarray(class_names, dtype=object),
            "area_m2": np.asarray(area_m2, dtype=np.float64),
        }
        for name, value in self.fields.items():
            columns[name] = np.full(len(columns["class_id"]), value, dtype=object)
        # for the analyst who corrects class_name in QGIS and ticks what was checked: a recipe
        # can train on the reviewed polygons only (``label_filter: reviewed``)
        columns[REVIEWED_FIELD] = np.zeros(len(columns["class_id"]), dtype=bool)
        return gpd.GeoDataFrame(
            columns,
            geometry=gpd.GeoSeries(np.asarray(geometries, dtype=object), crs=self.crs),
        )

    def _write(self, frame: Any, metadata: dict[str, str] | None) -> None:
        import pyogrio
        from pyogrio.errors import DataLayerError, DataSourceError

        created = self._temporary.exists()
        options: dict[str, Any] = {}
        if not created:
            # 1.2 rather than GDAL's default 1.4: GDAL < 3.7 (QGIS 3.22 in Debian 12 and other
            # long-term releases) warns that 1.4 "may only be partially supported"
            options["dataset_options"] = {"VERSION": "1.2"}
            options["layer_options"] = {
                "GEOMETRY_NAME": GEOMETRY_COLUMN,
                "SPATIAL_INDEX": "YES",
                "IDENTIFIER": self.layer,
                "DESCRIPTION": self.description,
            }
        try:
            pyogrio.write_dataframe(
                frame,
                self._temporary,
                layer=self.layer,
                driver="GPKG",
                geometry_type="Polygon",
                append=created,
                layer_metadata=metadata,
                **options,
            )
        except (DataSourceError, DataLayerError, OSError) as exc:
            raise OutputError(f"cannot write GeoPackage {self.path}: {first_line(exc)}") from exc
        self.features += len(frame)


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
    """Write polygons with ``class_id``, ``class_name``, ``area_m2`` to a new GeoPackage at once.

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
    with LandcoverWriter(
        path, crs, layer=layer, description=description, overwrite=overwrite
    ) as writer:
        writer.append(geometries, class_ids, class_names, area_m2)
        writer.finish(style, metadata)


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
