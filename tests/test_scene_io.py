"""Scene preflight, block-aligned strip reads, nodata handling and resampling to the model's GSD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from conftest import make_card, save_fake_model, write_raster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoseg.io.scene import open_scene
from geoseg.io.scene_reader import SceneReader
from geoseg.pipeline import PredictOptions, predict
from geoseg.tiling import Span, plan_tiles


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    height=st.integers(1, 150),
    block=st.sampled_from([16, 32]),
    tiled=st.booleans(),
    tile=st.integers(16, 64),
)
def test_strips_match_direct_reads_and_are_block_aligned(
    tmp_path_factory: pytest.TempPathFactory, height: int, block: int, tiled: bool, tile: int
) -> None:
    folder = tmp_path_factory.mktemp("strips")
    data = np.arange(2 * height * 40, dtype=np.uint16).reshape(2, height, 40)
    extra: dict[str, Any] = {} if tiled else {"blockysize": 3}
    path = write_raster(folder / "s.tif", data, tiled=tiled, block=block, **extra)
    scene = open_scene(path)
    plan = plan_tiles(height, 40, tile, tile // 4)
    reads: list[Span] = []
    with SceneReader(scene, (1, 2)) as reader:
        original = reader.read

        def spy(
            rows: Span, cols: Span, out: np.ndarray | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
            reads.append(rows)
            return original(rows, cols, out)

        reader.read = spy  # type: ignore[method-assign]
        for strip, (rows, _) in zip(reader.strips(plan), plan.row_spans, strict=True):
            assert strip.rows == rows
            np.testing.assert_array_equal(strip.data, data[:, rows.start : rows.stop])
            assert strip.valid.all()
    block_rows = scene.block_shape[0]
    covered = np.zeros(height, dtype=int)
    for span in reads:
        covered[span.start : span.stop] += 1
        assert span.start % block_rows == 0
        assert span.stop % block_rows == 0 or span.stop == height
    assert (covered == 1).all()  # every row (so every block) is decoded exactly once


def test_rgb_byte_nodata_collar_stays_nodata(shared_data: Path, tmp_path: Path) -> None:
    scene = shared_data / "rasterio-rgb" / "RGB.byte.tif"
    model = save_fake_model(
        tmp_path / "rgb.pt", make_card(bands=("red", "green", "blue"), tile_size=128, overlap=16)
    )
    out = tmp_path / "classes.tif"
    predict(scene, None, model=model, raster=out)
    with rasterio.open(scene) as src, rasterio.open(out) as cls:
        valid = np.all(src.read_masks() > 0, axis=0)
        classes = cls.read(1)
        assert (cls.crs, cls.transform, cls.shape) == (src.crs, src.transform, src.shape)
    assert (~valid).sum() > 100_000  # the collar is real
    assert (classes[~valid] == 255).all()
    assert (classes[valid] != 255).all()


def test_alpha_band_and_internal_mask_are_nodata(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(1, 255, size=(3, 40, 40), dtype=np.uint8)
    alpha = np.full((1, 40, 40), 255, dtype=np.uint8)
    alpha[0, :, :10] = 0
    path = write_raster(
        tmp_path / "alpha.tif",
        np.concatenate([data, alpha]),
        descriptions=["red", "green", "blue", "alpha"],
        photometric="RGB",
        alpha="YES",
    )
    model = save_fake_model(tmp_path / "m.pt", make_card(bands=("red", "green", "blue")))
    out = tmp_path / "c.tif"
    predict(path, None, model=model, raster=out)
    with rasterio.open(out) as cls:
        classes = cls.read(1)
    assert (classes[:, :10] == 255).all() and (classes[:, 10:] != 255).all()


@pytest.mark.parametrize("kind", ["none", "nodata", "internal mask", "alpha", "float"])
def test_reader_validity_is_gdal_masks_finite_and_not_all_zero(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(3)
    dtype = np.float32 if kind == "float" else np.uint16
    data = rng.integers(0, 4, size=(3, 48, 40)).astype(dtype)  # zeros in every band, here and there
    if kind == "float":
        data[1, 5, :7] = np.nan
        data[2, 9, 3] = np.inf
    extra: dict[str, Any] = {"nodata": 3} if kind == "nodata" else {}
    bands = (1, 2, 3)
    if kind == "alpha":
        alpha = np.where(rng.random((1, 48, 40)) < 0.3, 0, 255).astype(dtype)
        data = np.concatenate([data, alpha])
        extra = {"alpha": "YES", "photometric": "RGB"}
    path = write_raster(tmp_path / "s.tif", data, **extra)
    if kind == "internal mask":
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as dst:
            dst.write_mask(np.where(rng.random((48, 40)) < 0.3, 0, 255).astype(np.uint8))
    with rasterio.open(path) as src:
        masks = src.read_masks(bands)
        values = src.read(bands)
    expected = np.all(masks > 0, axis=0) & np.any(values != 0, axis=0)
    expected &= np.all(np.isfinite(values), axis=0)
    assert 0 < expected.sum() < expected.size
    plan = plan_tiles(48, 40, 16, 4)
    with SceneReader(open_scene(path), bands) as reader:
        for strip, (rows, _) in zip(reader.strips(plan), plan.row_spans, strict=True):
            np.testing.assert_array_equal(strip.valid, expected[rows.start : rows.stop])
            np.testing.assert_array_equal(strip.data, values[:, rows.start : rows.stop])


@pytest.mark.parametrize(
    ("scene_gsd", "crs"), [(20.0, "EPSG:32618"), (30.0, "EPSG:32618"), (0.0002, "EPSG:4326")]
)
def test_resampled_prediction_returns_on_scene_grid(
    tmp_path: Path, scene_gsd: float, crs: str
) -> None:
    rng = np.random.default_rng(2)
    data = rng.integers(1, 3000, size=(6, 37, 45), dtype=np.uint16)
    data[:, :5, :] = 0
    origin = (400000, 4000000) if crs != "EPSG:4326" else (-75.0, 37.0)
    transform = Affine(scene_gsd, 0, origin[0], 0, -scene_gsd, origin[1])
    path = write_raster(tmp_path / "s.tif", data, crs=crs, transform=transform, nodata=0)
    model = save_fake_model(tmp_path / "m.pt", make_card(gsd=10.0))
    out = tmp_path / "c.tif"
    result = predict(path, None, model=model, raster=out)
    geographic_gsd = open_scene(path).gsd
    assert result.resampled == (abs(geographic_gsd - 10.0) > 2.5)
    with rasterio.open(out) as cls:
        assert (cls.crs.to_string(), cls.transform, cls.shape) == (crs, transform, (37, 45))
        classes = cls.read(1)
    assert (classes[:5] == 255).all() and (classes[5:] != 255).all()


def test_geographic_gsd_is_in_metres(tmp_path: Path) -> None:
    data = np.ones((1, 10, 10), dtype=np.uint8)
    path = write_raster(
        tmp_path / "g.tif",
        data,
        crs="EPSG:4326",
        transform=Affine(0.001, 0, 10.0, 0, -0.001, 0.005),
    )
    assert open_scene(path).gsd == pytest.approx(
        110.9, rel=0.01
    )  # ~111 m per 0.001 deg at the equator


def test_predict_options_validate() -> None:
    from geoseg.errors import ConfigError

    for bad in ({"batch_size": 0}, {"min_area_m2": -1.0}, {"simplify_m": -0.5}, {"tile_size": 4}):
        with pytest.raises(ConfigError):
            PredictOptions(**bad)


def test_cpu_and_cuda_agree(tmp_path: Path, scene_factory: Callable[..., Path]) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(
            "no CUDA device on this machine: CPU/CUDA agreement is checked where one exists"
        )
    scene = scene_factory(height=300, width=280)
    model = save_fake_model(tmp_path / "m.pt", make_card(tile_size=128, overlap=16))
    outs = {}
    for device in ("cpu", "cuda"):
        outs[device] = tmp_path / f"{device}.tif"
        predict(
            scene, None, model=model, raster=outs[device], options=PredictOptions(device=device)
        )
    with rasterio.open(outs["cpu"]) as a, rasterio.open(outs["cuda"]) as b:
        agree = (a.read(1) == b.read(1)).mean()
    assert agree >= 0.995  # bfloat16 autocast flips only near-ties


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
@pytest.mark.parametrize("tiled", [True, False])
def test_dtypes_and_layouts(tmp_path: Path, dtype: str, tiled: bool) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(1, 200, size=(6, 33, 70)).astype(dtype)
    nodata: float | None = 0
    if dtype == "float32":
        data[:, :3] = np.nan
        nodata = float("nan")
    else:
        data[:, :3] = 0
    path = write_raster(
        tmp_path / f"s_{dtype}.tif", data, nodata=nodata, tiled=tiled, compress="lzw"
    )
    out = tmp_path / "c.tif"
    predict(path, None, model=save_fake_model(tmp_path / "m.pt"), raster=out)
    with rasterio.open(out) as cls:
        classes = cls.read(1)
    assert (classes[:3] == 255).all() and (classes[3:] != 255).all()


def test_vrt_input(tmp_path: Path) -> None:
    data = np.random.default_rng(4).integers(1, 3000, size=(6, 40, 40), dtype=np.uint16)
    tif = write_raster(tmp_path / "s.tif", data)
    vrt = tmp_path / "s.vrt"
    rasterio.shutil.copy(tif, vrt, driver="VRT")
    out_vrt, out_tif = tmp_path / "a.tif", tmp_path / "b.tif"
    model = save_fake_model(tmp_path / "m.pt")
    predict(vrt, None, model=model, raster=out_vrt)
    predict(tif, None, model=model, raster=out_tif)
    with rasterio.open(out_vrt) as a, rasterio.open(out_tif) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
