"""Sentinel-2 products as they come: a .SAFE folder or zip, a folder of band files, a STAC item."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import write_raster

from geoseg.errors import InvalidSceneError
from geoseg.io.scene import open_scene
from geoseg.pipeline import PredictOptions, predict, prepare

NAME = "S2B_MSIL2A_20230705T101559_N0509_R065_T32TQM_20230705T131146.SAFE"
ORIGIN = Affine(10, 0, 600000, 0, -10, 5000000)
BANDS = {
    10: ("B02", "B03", "B04", "B08"),
    20: ("B05", "B06", "B07", "B8A", "B11", "B12"),
    60: ("B01", "B09"),
}
# a vegetated surface, x 10000 + 1000 (processing baseline 04.00 on)
VALUES = {
    "B01": 1300,
    "B02": 1400,
    "B03": 1700,
    "B04": 1400,
    "B05": 2200,
    "B06": 3600,
    "B07": 4000,
    "B08": 4200,
    "B8A": 4300,
    "B09": 4000,
    "B11": 2900,
    "B12": 1900,
}

MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
<n1:General_Info><Product_Info><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE></Product_Info>
<Product_Image_Characteristics>
<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
</QUANTIFICATION_VALUES_LIST>
<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>
""".format(
    offsets="".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
)


def make_safe(root: Path) -> Path:
    """A tiny L2A .SAFE: 60 x 60 px at 10 m, a cloud in the north-west corner of the SCL."""
    safe = root / NAME
    granule = safe / "GRANULE" / "L2A_T32TQM_A032000_20230705T101559" / "IMG_DATA"
    rng = np.random.default_rng(0)
    for resolution, bands in BANDS.items():
        folder = granule / f"R{resolution}m"
        folder.mkdir(parents=True, exist_ok=True)
        size = 600 // resolution
        transform = ORIGIN * Affine.scale(resolution / 10)
        for band in bands:
            data = (VALUES[band] + rng.integers(-50, 50, (1, size, size))).astype(np.uint16)
            path = folder / f"T32TQM_20230705T101559_{band}_{resolution}m.tif"
            write_raster(path, data, crs="EPSG:32632", transform=transform, descriptions=())
    scl = np.full((1, 30, 30), 4, np.uint8)  # vegetation
    scl[0, :10, :10] = 9  # cloud, high probability
    scl[0, 20:, 20:] = 6  # water stays
    write_raster(
        granule / "R20m" / "T32TQM_20230705T101559_SCL_20m.tif",
        scl,
        crs="EPSG:32632",
        transform=ORIGIN * Affine.scale(2),
        descriptions=(),
    )
    (safe / "MTD_MSIL2A.xml").write_text(MTD)
    return safe


def test_safe_folder_reads_as_one_scene_with_its_metadata(tmp_path: Path) -> None:
    scene = open_scene(make_safe(tmp_path))
    assert scene.name == NAME and scene.count == 12
    assert (scene.width, scene.height) == (60, 60)  # the 10 m grid
    assert scene.descriptions[:4] == ("B01", "B02", "B03", "B04")
    assert scene.scales == pytest.approx((1e-4,) * 12)
    assert scene.offsets == pytest.approx((-0.1,) * 12)
    info = scene.radiometric_info()
    assert info.level == "surface"
    with rasterio.open(scene.path) as src:
        masks = src.read_masks(1)
        b05 = src.read(5)
    assert (masks[:20, :20] == 0).all() and (masks[20:, 20:] == 255).all()
    assert abs(int(b05.mean()) - VALUES["B05"]) < 60  # the 20 m band, on the 10 m grid


def test_safe_products_predict_with_dynamic_world(tmp_path: Path) -> None:
    safe = make_safe(tmp_path)
    run = prepare(safe, None, PredictOptions())
    assert run.model.card.name == "landcover-s2-dw"  # its red-edge bands name it
    assert run.radiometry.surface is True
    assert run.radiometry.offset[0] == pytest.approx(-0.1 + 0.07)  # offset, then the sky's path
    out = tmp_path / "lc.tif"
    predict(safe, None, raster=out)
    with rasterio.open(out) as src:
        classes = src.read(1)
    assert (classes[:20, :20] == 255).all()  # the cloud is nodata
    assert (classes[20:, 20:] != 255).all()


def test_zipped_safe_and_stac_item(tmp_path: Path) -> None:
    safe = make_safe(tmp_path / "unzipped")
    archive = shutil.make_archive(str(tmp_path / NAME), "zip", safe.parent, NAME)
    zipped = open_scene(archive)
    assert zipped.count == 12 and zipped.offsets[1] == pytest.approx(-0.1)
    granule = next(safe.glob("GRANULE/*/IMG_DATA"))
    assets = {}
    for resolution, bands in BANDS.items():
        for band in bands:
            href = granule / f"R{resolution}m" / f"T32TQM_20230705T101559_{band}_{resolution}m.tif"
            assets[band] = {
                "href": str(href.relative_to(tmp_path)),
                "eo:bands": [{"name": band}],
                "raster:bands": [{"scale": 0.0001, "offset": -0.1}],
            }
    item = {
        "type": "Feature",
        "id": "S2B_32TQM_20230705",
        "collection": "sentinel-2-l2a",
        "assets": assets,
    }
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    stac = open_scene(path)
    assert stac.name == "S2B_32TQM_20230705" and stac.count == 12
    assert stac.scales[0] == pytest.approx(1e-4) and stac.radiometric_info().level == "surface"


def test_a_folder_without_band_files_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(InvalidSceneError, match="no band files geoseg recognises"):
        open_scene(tmp_path)


def test_s2_virginia_band_files_as_a_folder(shared_data: Path, tmp_path: Path) -> None:
    """The real per-band files, read as one scene (20 m bands resampled while reading)."""
    scene = open_scene(shared_data / "s2-virginia")
    assert scene.count == 13 and (scene.width, scene.height) == (1933, 1947)
    run = prepare(shared_data / "s2-virginia", None, PredictOptions())
    assert run.model.card.name == "landcover-s2-dw"
    assert "assumed reflectance x 10000" in run.radiometry.source
