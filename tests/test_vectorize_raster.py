"""vectorize_raster: classes from the raster or a file, reprojection, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from class_raster_helpers import blocky_labels, write_class_raster

from geoseg.errors import OutputError, VectorizeError
from geoseg.models.card import LANDCOVER_CLASSES, ClassInfo
from geoseg.provenance import Provenance
from geoseg.vectorize import vectorize_raster


def _read(path: Path) -> tuple[Any, dict[str, Any]]:
    frame = pyogrio.read_dataframe(path, layer="landcover")
    return frame, pyogrio.read_info(path, layer="landcover")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".tif")


def test_geoseg_class_raster_to_styled_geopackage(tmp_path: Path) -> None:
    labels = blocky_labels(3)
    raster = write_class_raster(tmp_path / "classes.tif", labels)
    prov = Provenance("landcover-s2-unet", "ab" * 32, "scene.tif", {"tile_size": 256})
    result = vectorize_raster(raster, tmp_path / "out.gpkg", provenance=prov, block_size=16)
    frame, info = _read(result.path)
    assert info["crs"] == "EPSG:32633" and info["geometry_type"] == "Polygon"
    assert list(info["fields"]) == ["class_id", "class_name", "area_m2", "reviewed"]
    assert result.polygon_count == len(frame)
    names = {c.id: c.name for c in LANDCOVER_CLASSES}
    assert all(names[i] == n for i, n in zip(frame.class_id, frame.class_name, strict=True))
    assert result.classes == LANDCOVER_CLASSES
    assert result.total_area_m2 == pytest.approx(frame.area_m2.sum())
    # ground areas of 10 m UTM pixels on the central meridian: 100 m2 / 0.9996**2 each
    valid = (labels != 255).sum()
    assert result.total_area_m2 == pytest.approx(valid * 100 / 0.9996**2, rel=1e-6)
    assert set(result.timings_s) >= {"read", "polygonize", "simplify", "area", "write", "total"}
    meta = json.loads(info["layer_metadata"]["GEOSEG_PROVENANCE"])
    assert meta["model_name"] == "landcover-s2-unet" and meta["model_sha256"] == "ab" * 32
    assert meta["parameters"]["tile_size"] == 256
    assert meta["parameters"]["vectorize"]["min_area_m2"] == result.min_area_m2
    assert _leftovers(tmp_path) == ["out.gpkg"]


def test_classes_from_category_names_then_color_table(tmp_path: Path) -> None:
    labels = np.array([[0, 0, 1, 1], [2, 2, 1, 255]] * 2, dtype=np.uint8)
    named = write_class_raster(
        tmp_path / "named.tif", labels, tag=False, categories=("sea", "land", "ice")
    )
    result = vectorize_raster(named, tmp_path / "named.gpkg", min_area_m2=0)
    assert [(c.id, c.name) for c in result.classes] == [(0, "sea"), (1, "land"), (2, "ice")]
    assert result.classes[0].color == LANDCOVER_CLASSES[0].color  # from the color table

    plain = write_class_raster(tmp_path / "plain.tif", labels, tag=False)
    result = vectorize_raster(plain, tmp_path / "plain.gpkg", min_area_m2=0)
    assert [c.name for c in result.classes] == ["class 0", "class 1", "class 2"]
    assert [c.color for c in result.classes] == [c.color for c in LANDCOVER_CLASSES[:3]]


def test_classes_file_and_foreign_nodata(tmp_path: Path) -> None:
    # WorldCover style: uint16, nodata 0, classes 10, 20, 80
    labels = np.array([[10, 10, 20, 0]] * 3 + [[80, 80, 20, 0]] * 3, dtype=np.uint16)
    raster = write_class_raster(tmp_path / "wc.tif", labels, classes=None, nodata=0)
    spec = [
        {"id": 10, "name": "Tree cover", "color": "#006400"},
        {"id": 20, "name": "Shrubland", "color": "#ffbb22"},
        {"id": 80, "name": "Water", "color": "#0064c8"},
        {"id": 95, "name": "Mangroves", "color": "#00cf75"},
    ]
    (tmp_path / "wc.yaml").write_text(
        "classes:\n"
        + "".join(
            f"  - {{id: {c['id']}, name: {c['name']}, color: '{c['color']}'}}\n" for c in spec
        )
    )
    result = vectorize_raster(
        raster, tmp_path / "wc.gpkg", classes=tmp_path / "wc.yaml", min_area_m2=0
    )
    assert [c.id for c in result.classes] == [10, 20, 80, 95]
    assert result.polygons_per_class == {10: 1, 20: 1, 80: 1, 95: 0}
    frame, _ = _read(result.path)
    assert sorted(frame.class_name) == ["Shrubland", "Tree cover", "Water"]

    (tmp_path / "short.json").write_text(json.dumps(spec[:2]))
    with pytest.raises(VectorizeError, match=r"values \[80\]") as excinfo:
        vectorize_raster(raster, tmp_path / "bad.gpkg", classes=tmp_path / "short.json")
    assert "\n" not in str(excinfo.value)
    assert not (tmp_path / "bad.gpkg").exists()


def test_dst_crs_reprojects_on_purpose_only(tmp_path: Path) -> None:
    raster = write_class_raster(tmp_path / "c.tif", blocky_labels(5))
    native = vectorize_raster(raster, tmp_path / "native.gpkg", block_size=16)
    moved = vectorize_raster(raster, tmp_path / "wgs84.gpkg", dst_crs="EPSG:4326", block_size=16)
    frame, info = _read(moved.path)
    assert info["crs"] == "EPSG:4326" and moved.crs == "EPSG:4326"
    assert shapely.is_valid(frame.geometry.values).all()
    assert frame.total_bounds[0] == pytest.approx(15.0, abs=0.01)  # zone 33 central meridian
    assert moved.total_area_m2 == pytest.approx(native.total_area_m2)


def test_all_nodata_raster_gives_an_empty_styled_layer(tmp_path: Path) -> None:
    raster = write_class_raster(tmp_path / "empty.tif", np.full((20, 20), 255, dtype=np.uint8))
    result = vectorize_raster(raster, tmp_path / "empty.gpkg")
    assert result.polygon_count == 0 and result.total_area_m2 == 0
    _, info = _read(result.path)
    assert info["features"] == 0


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda p: write_class_raster(p, np.zeros((2, 8, 8), np.uint8)), {}, "2 bands"),
        (lambda p: write_class_raster(p, np.zeros((8, 8), np.float32)), {}, "float32"),
        (lambda p: write_class_raster(p, np.zeros((8, 8), np.uint8), crs=None), {}, "no CRS"),
        (lambda p: write_class_raster(p, np.zeros((8, 8), np.uint8)), {"min_area_m2": -1}, "-1"),
        (lambda p: write_class_raster(p, np.zeros((8, 8), np.uint8)), {"simplify_m": -2}, "-2"),
        (
            lambda p: write_class_raster(p, np.zeros((8, 8), np.uint8)),
            {"dst_crs": "EPSG:999999"},
            "EPSG:999999",
        ),
        (
            lambda p: write_class_raster(p, np.full((8, 8), 300, np.uint16), classes=None),
            {},
            "300",
        ),
        (
            lambda p: write_class_raster(p, np.zeros((8, 8), np.uint8)),
            {"classes": (ClassInfo(5, "x", "#000000"),)},
            r"values \[0\]",
        ),
        (lambda p: p, {}, "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, make: object, kwargs: dict[str, object], message: str
) -> None:
    raster = make(tmp_path / "in.tif")  # type: ignore[operator]
    with pytest.raises(VectorizeError, match=message) as excinfo:
        vectorize_raster(raster, tmp_path / "out.gpkg", **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(excinfo.value)
    assert _leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    raster = write_class_raster(tmp_path / "c.tif", blocky_labels(1))
    (tmp_path / "out.gpkg").write_text("keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        vectorize_raster(raster, tmp_path / "out.gpkg")
    assert (tmp_path / "out.gpkg").read_text() == "keep me"
    vectorize_raster(raster, tmp_path / "out.gpkg", overwrite=True)
    assert pyogrio.read_info(tmp_path / "out.gpkg", layer="landcover")["features"] > 0
    with pytest.raises(OutputError, match="does not exist"):
        vectorize_raster(raster, tmp_path / "missing" / "out.gpkg")


def test_worker_processes_give_the_serial_result(tmp_path: Path) -> None:
    labels = blocky_labels(11, (90, 70), cell=3)
    raster = write_class_raster(tmp_path / "classes.tif", labels)
    serial = vectorize_raster(raster, tmp_path / "serial.gpkg", block_size=16, workers=1)
    parallel = vectorize_raster(raster, tmp_path / "parallel.gpkg", block_size=16, workers=2)
    one, _ = _read(serial.path)
    two, _ = _read(parallel.path)
    assert len(one) == len(two) > 10
    assert list(one.class_id) == list(two.class_id)
    assert np.array_equal(one.area_m2.to_numpy(), two.area_m2.to_numpy())
    assert all(shapely.equals_exact(one.geometry.values, two.geometry.values, tolerance=0))


def test_a_value_found_in_a_worker_block_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    labels = blocky_labels(12, (64, 64), cell=4)
    labels[60:, 60:] = 9  # only the last block holds a value the classes do not name
    raster = write_class_raster(tmp_path / "classes.tif", labels, tag=False)
    (tmp_path / "classes.json").write_text(json.dumps([c.__dict__ for c in LANDCOVER_CLASSES]))
    with pytest.raises(VectorizeError, match=r"values \[9\]") as excinfo:
        vectorize_raster(
            raster,
            tmp_path / "out.gpkg",
            classes=tmp_path / "classes.json",
            block_size=16,
            min_area_m2=0,
            workers=2,
        )
    assert "\n" not in str(excinfo.value)
    assert _leftovers(tmp_path) == ["classes.json"]
