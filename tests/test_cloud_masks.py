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
    assert info.cloud_mask is not None
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
    assert open_scene(scene).cloud_mask is None
    other = write_raster(tmp_path / "LC09_L2SP_x_SR.tif", data, transform=TRANSFORM)
    assert open_scene(other).cloud_mask is None
    # and the options still work without one
    PredictOptions()


S2_TRANSFORM = Affine(10, 0, 500000, 0, -10, 4000000)
S2_DESCRIPTIONS = ("B02", "B03", "B04", "B08", "B11", "B12")
BANDS_6 = ("blue", "green", "red", "nir", "swir16", "swir22")


@pytest.mark.parametrize(
    ("kind", "clear", "flagged"),
    [
        ("SCL", (4, 5, 6, 2, 7, 11), (0, 1, 3, 8, 9, 10)),
        ("QA60", (0,), (1024, 2048, 3072)),
    ],
)
def test_a_sentinel2_stack_band_named_scl_or_qa60_masks_its_clouds(
    tmp_path: Path, kind: str, clear: tuple[int, ...], flagged: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(1)
    height, width = 36, 40
    values = np.array([*clear, *flagged], np.uint16)
    mask = values[rng.integers(0, len(values), size=(height, width))]
    data = rng.integers(500, 4000, size=(6, height, width)).astype(np.uint16)
    # the mask band sits among the reflectance bands, as exports put it
    stack = np.concatenate([data[:3], mask[None], data[3:]])
    descriptions = (*S2_DESCRIPTIONS[:3], kind.lower(), *S2_DESCRIPTIONS[3:])
    scene = write_raster(
        tmp_path / "s2_stack.tif", stack, transform=S2_TRANSFORM, descriptions=descriptions
    )
    info = open_scene(scene)
    assert info.cloud_mask is not None and info.cloud_mask.kind == kind
    assert info.cloud_mask.band == 4
    is_clear = np.isin(mask, clear)
    _, valid = read_sample(info, (1, 2, 3, 5, 6, 7))
    np.testing.assert_array_equal(valid, is_clear)
    model = save_fake_model(tmp_path / "m.pt", make_card(bands=BANDS_6))
    out = tmp_path / "classes.tif"
    predict(scene, tmp_path / "lc.gpkg", model=model, raster=out)
    with rasterio.open(out) as src:
        classes = src.read(1)
    np.testing.assert_array_equal(classes == 255, ~is_clear)
    report = (tmp_path / "lc.report.json").read_text()
    assert f"{kind}: band 4 of s2_stack.tif" in report
    # the mask never feeds the model
    assert "1 (B02) -> blue, 2 (B03) -> green, 3 (B04) -> red, 5 (B08) -> nir" in report
