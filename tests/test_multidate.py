"""Several dates of one place fuse into one map: mean class probabilities over the valid dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import UTM_TRANSFORM, write_raster

from geoseg.cli import main
from geoseg.errors import BandMappingError, InvalidSceneError
from geoseg.pipeline import PredictOptions, predict

OPTIONS = PredictOptions(precision="fp32")


def _classes(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        classes: np.ndarray = src.read(1)
    return classes


def _scene(tmp_path: Path, name: str, seed: int, **kw: Any) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.integers(100, 3000, size=(6, 40, 50), dtype=np.uint16)
    return write_raster(tmp_path / name, data, **kw)


def test_one_date_twice_is_that_date(tmp_path: Path, fake_model: Path) -> None:
    a = _scene(tmp_path, "a.tif", 1)
    single, fused = tmp_path / "single.tif", tmp_path / "fused.tif"
    kept = {"options": OPTIONS, "model": fake_model}
    predict(a, None, raster=single, confidence=tmp_path / "c1.tif", **kept)  # type: ignore[arg-type]
    result = predict([a, a], None, raster=fused, confidence=tmp_path / "c2.tif", **kept)  # type: ignore[arg-type]
    np.testing.assert_array_equal(_classes(single), _classes(fused))
    # the mean of one probability twice is that probability: the same confidence
    np.testing.assert_array_equal(_classes(tmp_path / "c1.tif"), _classes(tmp_path / "c2.tif"))
    assert len(result.date_class_pixels) == 2
    assert result.date_class_pixels[0] == result.date_class_pixels[1] == result.class_pixels


def test_a_date_missing_somewhere_leaves_the_others(tmp_path: Path, fake_model: Path) -> None:
    a = _scene(tmp_path, "a.tif", 1)
    rng = np.random.default_rng(2)
    data = rng.integers(100, 3000, size=(6, 40, 50), dtype=np.uint16)
    data[:, :, :25] = 0  # the west half is cloud, masked as 0
    b = write_raster(tmp_path / "b.tif", data)
    predict(a, None, model=fake_model, raster=tmp_path / "a_out.tif", options=OPTIONS)
    predict(b, None, model=fake_model, raster=tmp_path / "b_out.tif", options=OPTIONS)
    result = predict([a, b], None, model=fake_model, raster=tmp_path / "ab.tif", options=OPTIONS)
    fused, only_a, only_b = (_classes(tmp_path / f) for f in ("ab.tif", "a_out.tif", "b_out.tif"))
    # where only date A is valid, the fused map is date A's (away from B's cloud edge)
    np.testing.assert_array_equal(fused[:, :22], only_a[:, :22])
    # where both are valid, the fused class is one of the two dates' (mean of probabilities)
    both = fused[:, 28:]
    assert np.all((both == only_a[:, 28:]) | (both == only_b[:, 28:]))
    assert (fused != 255).all()
    assert sum(result.date_class_pixels[1].values()) < sum(result.date_class_pixels[0].values())


def test_a_date_in_another_crs_is_read_onto_the_first_grid(
    tmp_path: Path, fake_model: Path
) -> None:
    a = _scene(tmp_path, "a.tif", 1)
    with rasterio.open(a) as src:
        data = src.read()
    # the same pixels in geographic coordinates, slightly larger pixels
    from rasterio.warp import calculate_default_transform, reproject

    transform, width, height = calculate_default_transform(
        "EPSG:32618", "EPSG:4326", 50, 40, *rasterio.open(a).bounds
    )
    out = np.zeros((6, height, width), dtype=np.uint16)
    for i in range(6):
        reproject(
            data[i],
            out[i],
            src_transform=UTM_TRANSFORM,
            src_crs="EPSG:32618",
            dst_transform=transform,
            dst_crs="EPSG:4326",
        )
    b = write_raster(tmp_path / "b.tif", out, crs="EPSG:4326", transform=transform)
    predict([a, b], None, model=fake_model, raster=tmp_path / "ab.tif", options=OPTIONS)
    with rasterio.open(tmp_path / "ab.tif") as src:
        assert src.crs.to_epsg() == 32618 and src.transform == UTM_TRANSFORM
        assert src.shape == (40, 50)


def test_bad_dates_are_one_line_errors_naming_them(tmp_path: Path, fake_model: Path) -> None:
    a = _scene(tmp_path, "a.tif", 1)
    far = _scene(
        tmp_path, "far.tif", 2, transform=UTM_TRANSFORM * UTM_TRANSFORM.translation(10_000, 0)
    )
    with pytest.raises(InvalidSceneError, match=r"date .*far\.tif does not overlap"):
        predict([a, far], None, model=fake_model, raster=tmp_path / "x.tif")
    rgb = write_raster(tmp_path / "rgb.tif", np.ones((3, 40, 50), np.uint16))
    with pytest.raises(BandMappingError, match=r"date .*rgb\.tif: "):
        predict([a, rgb], None, model=fake_model, raster=tmp_path / "x.tif")
    assert not (tmp_path / "x.tif").exists()


def test_cli_takes_several_scenes(tmp_path: Path, fake_model: Path) -> None:
    a, b = _scene(tmp_path, "a.tif", 1), _scene(tmp_path, "b.tif", 2)
    out = tmp_path / "lc.gpkg"
    result = CliRunner().invoke(
        main, ["predict", str(a), str(b), "--out", str(out), "--model", str(fake_model)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert "date a.tif alone" in result.output and "date b.tif alone" in result.output


def test_dates_fill_each_other_when_resampled(tmp_path: Path) -> None:
    """Scenes at 20 m for a 10 m model: the map comes back on the first date's grid, and where
    the first date is cloud the other date's classes stay (not the first date's mask)."""
    from conftest import make_card, save_fake_model

    model = save_fake_model(tmp_path / "m10.pt", make_card(gsd=10.0))
    transform = UTM_TRANSFORM * UTM_TRANSFORM.scale(2)
    rng = np.random.default_rng(3)
    cloudy = rng.integers(100, 3000, size=(6, 40, 50), dtype=np.uint16)
    cloudy[:, :, :25] = 0
    a = write_raster(tmp_path / "a.tif", cloudy, transform=transform)
    b = write_raster(
        tmp_path / "b.tif",
        rng.integers(100, 3000, size=(6, 40, 50), dtype=np.uint16),
        transform=transform,
    )
    predict([a, b], None, model=model, raster=tmp_path / "ab.tif", options=OPTIONS)
    predict(b, None, model=model, raster=tmp_path / "b_out.tif", options=OPTIONS)
    fused, only_b = _classes(tmp_path / "ab.tif"), _classes(tmp_path / "b_out.tif")
    assert fused.shape == (40, 50)
    assert (fused[:, :24] != 255).all()
    assert (fused[:, :22] == only_b[:, :22]).mean() > 0.95
