"""geoseg vectorize names the classes of well-known land-cover rasters with their own legends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from conftest import write_raster

from geoseg.vectorize import vectorize_raster


@pytest.mark.parametrize(
    ("tags", "values", "expected"),
    [
        (
            {"title": "ESA WorldCover product at 10m resolution for year 2021"},
            (10, 80),
            {"tree cover": "#006400", "permanent water bodies": "#0064c8"},
        ),
        ({"classes": "0=water,1=trees,6=built"}, (0, 6), {"water": "#419bdf", "built": "#c4281b"}),
    ],
)
def test_known_legends(
    tmp_path: Path, tags: dict[str, str], values: tuple[int, int], expected: dict[str, str]
) -> None:
    data = np.full((1, 40, 40), values[0], np.uint8)
    data[0, :, 20:] = values[1]
    raster = write_raster(tmp_path / "lc.tif", data, nodata=255, descriptions=())
    with rasterio.open(raster, "r+") as dst:
        dst.update_tags(**tags)
    out = tmp_path / "lc.gpkg"
    result = vectorize_raster(raster, out, min_area_m2=0)
    frame = pyogrio.read_dataframe(out, layer="landcover")
    assert set(frame["class_name"]) == set(expected)
    colors = {c.name: c.color for c in result.classes}
    assert {name: colors[name] for name in expected} == expected
