"""The class raster writer: patches streamed into a GeoTIFF that follows geoseg's contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from geoseg.core import CLASSES_TAG, NODATA, PROVENANCE_TAG, Grid
from geoseg.io.class_raster_writer import ClassRasterWriter, raster_sidecars
from geoseg.models.card import LANDCOVER_CLASSES
from geoseg.stitching import Patch
from geoseg.tiling import Span

TRANSFORM = Affine(10, 0, 500000, 0, -10, 4000000)


def test_a_class_map_written_in_patches_reads_back(tmp_path: Path) -> None:
    classes = LANDCOVER_CLASSES
    labels = np.array(
        [[0, 1, 2, 3, 4], [4, 3, NODATA, 1, 0], [2, 2, 2, NODATA, NODATA]], dtype=np.uint8
    )
    path = tmp_path / "classes.tif"
    grid = Grid(CRS.from_epsg(32633), TRANSFORM, width=5, height=3)
    with ClassRasterWriter(path, grid, classes, provenance='{"model": "m"}') as writer:
        # a row of two patches, then the rest in one
        writer.write(Patch(Span(0, 1), Span(0, 2), labels[:1, :2]))
        writer.write(Patch(Span(0, 1), Span(2, 5), labels[:1, 2:]))
        writer.write(Patch(Span(1, 3), Span(0, 5), labels[1:]))
    assert writer.counts[:5].tolist() == [2, 2, 4, 2, 2] and writer.counts[NODATA] == 3
    assert writer.valid_pixels == 12
    with rasterio.open(path) as raster:
        assert (raster.count, raster.dtypes[0], raster.nodata) == (1, "uint8", NODATA)
        assert raster.crs == CRS.from_epsg(32633) and raster.transform == TRANSFORM
        assert np.array_equal(raster.read(1), labels)
        table = raster.colormap(1)
        for c in classes:
            assert table[c.id] == (*c.rgb, 255)
        assert table[NODATA] == (0, 0, 0, 0)
        tags = raster.tags()
        assert json.loads(tags[CLASSES_TAG]) == [
            {"id": c.id, "name": c.name, "color": c.color} for c in classes
        ]
        assert tags[PROVENANCE_TAG] == '{"model": "m"}'


def test_raster_sidecars_name_the_classes_for_gdal_and_qgis(tmp_path: Path) -> None:
    sidecars = raster_sidecars(tmp_path / "lc.tif", LANDCOVER_CLASSES)
    assert sorted(p.name for p in sidecars) == ["lc.qml", "lc.tif.aux.xml"]
    category_names = sidecars[tmp_path / "lc.tif.aux.xml"]
    assert all(f"<Category>{c.name}</Category>" in category_names for c in LANDCOVER_CLASSES)
    assert all(c.color in sidecars[tmp_path / "lc.qml"] for c in LANDCOVER_CLASSES)
