"""Landsat QA_PIXEL: clouds, shadows, cirrus and fill are nodata, however the scene is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import make_card, save_fake_model, write_raster

from geoseg.io.scene import open_scene, read_sample
from geoseg.pipeline import PredictOptions, predict

PRODUCT = "LC08_L2SP_017051_20151205_20200908_02_T1"
CLEAR, CLOUD, SHADOW, CIRRUS = 21824, 22280, 23888, 21828
TRANSFORM = Affine(30, 0, 600000, 0, -30, 1500000)


def _scene(folder: Path, qa: np.ndarray, *, beside: bool = True, name: str = PRODUCT) -> Path:
    rng = np.random.default_rng(0)
    height, width = qa.shape
    data = (rng.integers(8000, 20000, size=(6, height, width))).astype(np.uint16)
    if beside:
        write_raster(folder / f"{PRODUCT}_QA_PIXEL.TIF", qa[None], transform=TRANSFORM)
        return write_raster(folder / f"{name}_SR.tif", data, transform=TRANSFORM)
    stack = np.concatenate([data, qa[None]])
    descriptions = ("blue", "green", "red", "nir", "swir16", "swir22", "QA_PIXEL")
    return write_raster(
        folder / f"{name}_SR.tif", stack, transform=TRANSFORM, descriptions=descriptions
    )


def _qa(height: int = 40, width: int = 44) -> np.ndarray:
    qa = np.full((height, width), CLEAR, np.uint16)
    qa[5:15, 5:20] = CLOUD
    qa[20:25, 30:40] = SHADOW
    qa[30:33, :] = CIRRUS
    return qa


@pytest.mark.parametrize("beside", [True, False], ids=["file beside", "band of the stack"])
@pytest.mark.parametrize("gsd", [None, 10.0], ids=["own grid", "resampled to 10 m"])
def test_flagged_pixels_are_nodata(tmp_path: Path, beside: bool, gsd: float | None) -> None:
    qa = _qa()
    scene = _scene(tmp_path, qa, beside=beside)
    info = open_scene(scene)
    assert info.qa_pixel is not None
    _, valid = read_sample(info, (1, 2, 3, 4, 5, 6))
    np.testing.assert_array_equal(valid, qa == CLEAR)
    model = save_fake_model(tmp_path / "m.pt", make_card(gsd=gsd))
    out = tmp_path / "classes.tif"
    result = predict(scene, tmp_path / "lc.gpkg", model=model, raster=out)
    with rasterio.open(out) as src:
        classes = src.read(1)
    np.testing.assert_array_equal(classes == 255, qa != CLEAR)
    report = (tmp_path / "lc.report.json").read_text()
    assert "QA_PIXEL" in report and result.tiles >= 1


def test_a_qa_file_of_another_grid_or_product_is_not_used(tmp_path: Path) -> None:
    qa = _qa()
    write_raster(
        tmp_path / f"{PRODUCT}_QA_PIXEL.TIF", qa[None, :30], transform=TRANSFORM
    )  # cut: another grid
    data = np.full((6, 40, 44), 9000, np.uint16)
    scene = write_raster(tmp_path / f"{PRODUCT}_SR.tif", data, transform=TRANSFORM)
    assert open_scene(scene).qa_pixel is None
    other = write_raster(tmp_path / "LC09_L2SP_x_SR.tif", data, transform=TRANSFORM)
    assert open_scene(other).qa_pixel is None
    # and the options still work without one
    PredictOptions()
