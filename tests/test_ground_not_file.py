"""A pixel's class depends on the ground, never on the rest of the file (issue: tile archives).

The same ground in a crop, a tile of an archive cut at odd offsets, or a scene whose other half is
quite different gets the same classes, away from the file edges (where context differs). The
model is the embedded Dynamic World network, which downsamples by 2: chips are aligned to the
absolute pixel grid, so the crop's odd offset does not move its downsampling grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import UTM_TRANSFORM, write_raster

from geoseg.models.catalogue import DYNAMIC_WORLD_BANDS
from geoseg.models.loading import load_model, save_model_file
from geoseg.pipeline import PredictOptions, predict

MARGIN = 28  # the network sees about 23 px around a pixel


def _predict(scene: Path, model: Path, out: Path) -> np.ndarray:
    predict(scene, None, model=model, raster=out, options=PredictOptions(precision="fp32"))
    with rasterio.open(out) as src:
        classes: np.ndarray = src.read(1)
    return classes


@pytest.fixture
def dw_like(tmp_path: Path) -> Path:
    """Dynamic World's weights with small tiles (overlap for its 23 px of context)."""
    loaded = load_model("landcover-s2-dw")
    card = loaded.card.with_updates(tile_size=96, overlap=46)
    save_model_file(tmp_path / "dw.pt", card, loaded.network.state_dict())
    return tmp_path / "dw.pt"


def _scene(seed: int = 0) -> np.ndarray:
    """Fields of 8 x 8 px with plausible spectra (water, vegetation, soil) and some noise."""
    rng = np.random.default_rng(seed)
    spectra = np.array(
        [
            [600, 500, 300, 250, 200, 180, 150, 100, 80],  # water
            [400, 700, 400, 1200, 2800, 3300, 3500, 1800, 800],  # vegetation
            [1000, 1300, 1600, 1800, 2000, 2100, 2200, 2900, 2400],  # soil, built
        ]
    )
    fields = rng.integers(0, 3, size=(16, 16)).repeat(8, axis=0).repeat(8, axis=1)
    data = spectra[fields].transpose(2, 0, 1) + rng.integers(0, 200, size=(9, 128, 128))
    return data.astype(np.uint16)


@pytest.mark.parametrize("half_pixel", [False, True], ids=["on round numbers", "half a pixel off"])
def test_crop_at_odd_offset_gets_the_same_classes(
    tmp_path: Path, dw_like: Path, half_pixel: bool
) -> None:
    data = _scene()
    # Landsat's grids sit half a 10 m pixel off the CRS's round numbers (x = 440985 m)
    origin = UTM_TRANSFORM * UTM_TRANSFORM.translation(0.5, 0.5) if half_pixel else UTM_TRANSFORM
    whole = _predict(
        write_raster(
            tmp_path / "whole.tif", data, transform=origin, descriptions=DYNAMIC_WORLD_BANDS
        ),
        dw_like,
        tmp_path / "w.tif",
    )
    r0, c0, size = 31, 29, 96
    crop_transform = origin * origin.translation(c0, r0)
    crop = write_raster(
        tmp_path / "crop.tif",
        np.ascontiguousarray(data[:, r0 : r0 + size, c0 : c0 + size]),
        transform=crop_transform,
        descriptions=DYNAMIC_WORLD_BANDS,
    )
    part = _predict(crop, dw_like, tmp_path / "c.tif")
    m = MARGIN
    inner = part[m:-m, m:-m]
    reference = whole[r0 + m : r0 + size - m, c0 + m : c0 + size - m]
    np.testing.assert_array_equal(inner, reference)


def test_the_rest_of_the_file_does_not_change_a_pixel(tmp_path: Path, dw_like: Path) -> None:
    data = _scene()
    first = _predict(
        write_raster(tmp_path / "a.tif", data, descriptions=DYNAMIC_WORLD_BANDS),
        dw_like,
        tmp_path / "a_out.tif",
    )
    other = data.copy()
    other[:, :, 64:] = 9000  # the east half becomes something else entirely (cloud, snow)
    second = _predict(
        write_raster(tmp_path / "b.tif", other, descriptions=DYNAMIC_WORLD_BANDS),
        dw_like,
        tmp_path / "b_out.tif",
    )
    west = slice(0, 64 - MARGIN)
    np.testing.assert_array_equal(first[:, west], second[:, west])


def test_physical_input_whatever_the_stored_scale(tmp_path: Path, dw_like: Path) -> None:
    """The same reflectance stored x 10000 in uint16 or as float reflectance: same classes."""
    data = _scene()
    ints = _predict(
        write_raster(tmp_path / "i.tif", data, descriptions=DYNAMIC_WORLD_BANDS),
        dw_like,
        tmp_path / "i_out.tif",
    )
    floats = write_raster(
        tmp_path / "f.tif", (data / 10000).astype(np.float32), descriptions=DYNAMIC_WORLD_BANDS
    )
    np.testing.assert_array_equal(ints, _predict(floats, dw_like, tmp_path / "f_out.tif"))
    scaled = write_raster(
        tmp_path / "s.tif", (data // 10).astype(np.uint16), descriptions=DYNAMIC_WORLD_BANDS
    )
    with rasterio.open(scaled, "r+") as dst:
        dst.scales = (0.001,) * 9  # x 1000, declared the GDAL way
    result = _predict(scaled, dw_like, tmp_path / "s_out.tif")
    # integer division lost a digit: nearly all pixels agree, not bit for bit
    assert (result == ints).mean() > 0.97
