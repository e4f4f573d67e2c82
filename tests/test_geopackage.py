"""The delivered GeoPackage: fields, style row as QGIS reads it, provenance, atomic writes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from class_raster_helpers import blocky_labels, write_class_raster
from test_styles import qml_categories

from geoseg.errors import OutputError
from geoseg.io import geopackage
from geoseg.io.geopackage import read_default_style, write_landcover
from geoseg.models.card import LANDCOVER_CLASSES
from geoseg.provenance import Provenance
from geoseg.styles import landcover_style
from geoseg.vectorize import vectorize_raster

QGIS_STYLE_COLUMNS = [
    "id",
    "f_table_catalog",
    "f_table_schema",
    "f_table_name",
    "f_geometry_column",
    "styleName",
    "styleQML",
    "styleSLD",
    "useAsDefault",
    "description",
    "owner",
    "ui",
    "update_time",
]


@pytest.fixture
def gpkg(tmp_path: Path) -> Path:
    raster = write_class_raster(tmp_path / "classes.tif", blocky_labels(7))
    prov = Provenance("landcover-s2-unet", "0f" * 32, "scene.tif")
    return vectorize_raster(raster, tmp_path / "landcover.gpkg", provenance=prov).path


def test_layer_styles_row_names_every_class_with_its_color(gpkg: Path) -> None:
    row = read_default_style(gpkg, "landcover")
    assert row is not None
    assert row["f_table_name"] == "landcover"
    assert row["f_geometry_column"] == "geom"
    assert row["f_table_catalog"] == "" and row["f_table_schema"] == ""
    assert row["useAsDefault"] == 1
    assert qml_categories(row["styleQML"]) == {
        str(c.id): (c.name, "{},{},{},255".format(*c.rgb)) for c in LANDCOVER_CLASSES
    }
    assert all(c.color in row["styleSLD"] for c in LANDCOVER_CLASSES)


def test_style_table_is_the_qgis_table_registered_in_gpkg_contents(gpkg: Path) -> None:
    with sqlite3.connect(gpkg) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(layer_styles)")]
        contents = dict(db.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
        geometry_column = db.execute(
            "SELECT column_name, geometry_type_name FROM gpkg_geometry_columns "
            "WHERE table_name = 'landcover'"
        ).fetchone()
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    assert columns == QGIS_STYLE_COLUMNS
    assert contents == {"landcover": "features", "layer_styles": "attributes"}
    assert geometry_column == ("geom", "POLYGON")
    assert integrity == "ok"
    layers = dict(pyogrio.list_layers(gpkg).tolist())
    assert layers == {"landcover": "Polygon", "layer_styles": None}


def test_fields_geometry_and_provenance(gpkg: Path) -> None:
    info = pyogrio.read_info(gpkg, layer="landcover")
    assert dict(zip(info["fields"], info["dtypes"], strict=True)) == {
        "class_id": "int32",
        "class_name": "object",
        "area_m2": "float64",
        "reviewed": "bool",
    }
    assert info["geometry_type"] == "Polygon" and info["crs"] == "EPSG:32633"
    provenance = json.loads(info["layer_metadata"]["GEOSEG_PROVENANCE"])
    assert provenance["model_name"] == "landcover-s2-unet"
    assert provenance["model_sha256"] == "0f" * 32
    assert provenance["input_path"] == "scene.tif"
    assert provenance["geoseg_version"] and provenance["created"]
    assert set(provenance["parameters"]["vectorize"]) >= {"min_area_m2", "simplify_m"}
    classes = json.loads(info["layer_metadata"]["GEOSEG_CLASSES"])
    assert [c["name"] for c in classes] == [c.name for c in LANDCOVER_CLASSES]
    frame = pyogrio.read_dataframe(gpkg, layer="landcover")
    assert shapely.is_valid(frame.geometry.values).all()
    assert (frame.area_m2 > 0).all()


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(geopackage, "add_default_style", broken)
    with pytest.raises(OutputError, match="disk I/O error"):
        write_landcover(
            tmp_path / "out.gpkg",
            np.array([shapely.box(0, 0, 1, 1)], dtype=object),
            np.array([1]),
            np.array(["water"], dtype=object),
            np.array([1.0]),
            "EPSG:32633",
            style=landcover_style(LANDCOVER_CLASSES),
        )
    assert list(tmp_path.iterdir()) == []


def test_batches_are_appended_and_an_unfinished_file_is_not_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(geopackage, "CHUNK_VERTICES", 7)  # a batch of boxes goes in chunks
    out = tmp_path / "out.gpkg"
    boxes = np.array([shapely.box(i, 0, i + 1, 1) for i in range(5)], dtype=object)
    names = np.array(["water"] * 5, dtype=object)
    with geopackage.LandcoverWriter(out, "EPSG:32633") as writer:
        writer.append(boxes[:2], np.ones(2), names[:2], np.ones(2))
        writer.append(boxes[:0], np.ones(0), names[:0], np.ones(0))  # an empty batch is fine
        writer.append(boxes[2:], np.ones(3), names[2:], np.ones(3))
        assert not out.exists()  # only complete files appear
        writer.finish(landcover_style(LANDCOVER_CLASSES), {"GEOSEG_PROVENANCE": "{}"})
    info = pyogrio.read_info(out, layer="landcover")
    assert info["features"] == 5 and info["total_bounds"] == (0.0, 0.0, 5.0, 1.0)
    assert info["layer_metadata"]["GEOSEG_PROVENANCE"] == "{}"
    assert read_default_style(out) is not None
    with sqlite3.connect(out) as db:  # the spatial index holds every batch
        assert db.execute("SELECT COUNT(*) FROM rtree_landcover_geom").fetchone() == (5,)

    again = tmp_path / "again.gpkg"
    with (
        pytest.raises(OutputError, match="unfinished"),
        geopackage.LandcoverWriter(again, "EPSG:32633") as writer,
    ):
        writer.append(boxes, np.ones(5), names, np.ones(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg"]
