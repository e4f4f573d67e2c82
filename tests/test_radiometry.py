"""Scene values -> reflectance, decided from metadata before any pixel is read."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import write_raster
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.cli import main
from geoseg.errors import ConfigError, InvalidSceneError
from geoseg.io.product_metadata import find_landsat_mtl, parse_mtl
from geoseg.io.scene import open_scene, read_sample
from geoseg.pipeline import PredictOptions, predict, prepare
from geoseg.radiometry import (
    RadiometryRequest,
    SceneRadiometricInfo,
    assume_from_sample,
    landsat_level1,
    landsat_radiometry,
    landsat_sun_elevation,
    product_from_name,
    resolve_radiometry,
    to_model_level,
)
from geoseg.radiometry.assume import darkest_percent

SIX = ("blue", "green", "red", "nir", "swir16", "swir22")


def info(name: str = "scene.tif", dtype: str = "uint16", **kw: Any) -> SceneRadiometricInfo:
    fields: dict[str, object] = {"scales": (1.0,) * 6, "offsets": (0.0,) * 6, **kw}
    return SceneRadiometricInfo(name=name, dtype=dtype, **fields)  # type: ignore[arg-type]


def test_the_order_of_decision() -> None:
    bands = (1, 2, 3, 4, 5, 6)
    # nothing said: assumed from the data type, and flagged as an assumption
    assumed = resolve_radiometry(info(), bands, SIX)
    assert assumed.scale == (1e-4,) * 6 and assumed.assumed
    assert resolve_radiometry(info(dtype="float32"), bands, SIX).scale == (1.0,) * 6
    assert resolve_radiometry(info(dtype="uint8"), bands, SIX).scale == (0.0015,) * 6
    # the file's GDAL scale/offset beat any convention
    declared = info(scales=(2.75e-5,) * 6, offsets=(-0.2,) * 6, name="LC08_L1TP_x.tif")
    got = resolve_radiometry(declared, bands, SIX)
    assert got.scale == (2.75e-5,) * 6 and got.offset == (-0.2,) * 6 and not got.assumed
    # a product name is a convention
    l2 = resolve_radiometry(info(name="LC09_L2SP_231062_20230723_SR.tif"), bands, SIX)
    assert l2.scale == (2.75e-5,) * 6 and l2.offset == (-0.2,) * 6
    # the user's word beats everything
    user = resolve_radiometry(declared, bands, SIX, RadiometryRequest(product="reflectance-x1000"))
    assert user.scale == (1e-3,) * 6 and "--product" in user.source
    per_band = RadiometryRequest(scale=(1e-4, 1e-4, 1e-4, 2e-4, 2e-4, 2e-4), offset=(-0.1,))
    got = resolve_radiometry(info(), bands, SIX, per_band)
    assert got.scale[3] == 2e-4 and got.offset == (-0.1,) * 6


def test_only_the_selected_bands_count() -> None:
    scales = (1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0)
    got = resolve_radiometry(info(scales=scales, offsets=(0.0,) * 7), (1, 3), ("blue", "red"))
    assert got.assumed  # band 2's scale is not among the model's bands
    assert resolve_radiometry(
        info(scales=scales, offsets=(0.0,) * 7), (2, 3), ("blue", "red")
    ).scale == (0.5, 1.0)


@pytest.mark.parametrize(
    ("request_kw", "message"),
    [
        ({"product": "jpeg"}, "unknown product 'jpeg'"),
        ({"product": "dn8", "scale": (0.1,)}, "either --product or --scale"),
        ({"scale": (0.0,)}, "> 0"),
        ({"scale": (math.inf,)}, "finite"),
    ],
)
def test_bad_requests_are_one_line_config_errors(
    request_kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        RadiometryRequest(**request_kw)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


def test_per_band_values_must_match_the_model() -> None:
    with pytest.raises(ConfigError, match="give one, or one per model band"):
        resolve_radiometry(info(), (1, 2, 3), SIX[:3], RadiometryRequest(scale=(1e-4, 1e-4)))


def test_product_names() -> None:
    landsat = product_from_name("LC08_L1TP_017051_20151205_20200908_02_T1_B2-B7_DN.tif")
    assert landsat is not None and landsat[0] == "landsat-c2-l1"
    l1c = product_from_name("S2A_MSIL1C_20170216T100131_N0204_R122_T33UUU.tif")
    assert l1c is not None and l1c[0] == "sentinel2-l1c"
    l2a = product_from_name("S2C_MSIL2A_20250101T000000_N0511_R000_T00XXX.tif")
    assert l2a is not None and l2a[0] == "sentinel2-l2a-pb04"
    assert product_from_name("my_landsat_mosaic.tif") is None


MTL_L1 = (
    """GROUP = LANDSAT_METADATA_FILE
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_8"
    SUN_ELEVATION = 30.0
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = PRODUCT_CONTENTS
    PROCESSING_LEVEL = "L1TP"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = LEVEL1_RADIOMETRIC_RESCALING
"""
    + "".join(
        f"    REFLECTANCE_MULT_BAND_{n} = 2.0E-05\n    REFLECTANCE_ADD_BAND_{n} = -0.1\n"
        for n in range(1, 8)
    )
    + """  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING
END_GROUP = LANDSAT_METADATA_FILE
"""
)


def test_landsat_level1_gains_are_corrected_for_the_sun() -> None:
    got = landsat_radiometry(parse_mtl(MTL_L1), SIX, "x_MTL.txt")
    # sin(30 deg) = 0.5: reflectance gains doubled
    assert got.scale == pytest.approx((4e-5,) * 6) and got.offset == pytest.approx((-0.2,) * 6)


def test_landsat_level2_gains_are_the_surface_reflectance_ones(shared_data: Path) -> None:
    folder = shared_data / "landsat-xlandsat"
    scene = open_scene(folder / "LC08_L2SP_204023_20200927_20201006_02_T1_B2-B7_SR.tif")
    assert scene.landsat_mtl_name == "LC08_L2SP_204023_20200927_20201006_02_T1_MTL.txt"
    got = resolve_radiometry(scene.radiometric_info(), tuple(range(1, 7)), SIX)
    assert got.scale == pytest.approx((2.75e-5,) * 6) and got.offset == pytest.approx((-0.2,) * 6)
    # its descriptions name the bands (blue_B2 ...) and its sensor reads bare ids as Landsat
    assert scene.sensor == "landsat-oli"


def test_old_landsat_radiance_gains_give_toa_reflectance(shared_data: Path) -> None:
    """The Amazon TM scene: radiance gains, sun elevation, Earth-Sun distance, ESUN (its README)."""
    folder = shared_data / "landsat5-amazon-rstoolbox"
    scene = open_scene(folder / "LT05_1988-08-14_B1-B7.tif")
    got = resolve_radiometry(scene.radiometric_info(), tuple(range(1, 7)), SIX)
    assert "radiance gains" in got.source
    # the README's recipe for band 4 (nir), a DN of 77 (closed forest)
    d, elevation = 1.0129, math.radians(49.75588889)
    radiance = 0.876 * 77 - 2.38602
    expected = math.pi * radiance * d**2 / (1031.0 * math.sin(elevation))
    assert 77 * got.scale[3] + got.offset[3] == pytest.approx(expected, rel=1e-3)
    sample, valid = read_sample(scene, tuple(range(1, 7)))
    forest_nir = np.median(sample[3][valid]) * got.scale[3] + got.offset[3]
    assert 0.15 < forest_nir < 0.5  # a plausible near-infrared reflectance over rain forest


def test_an_mtl_of_another_scene_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "LC08_L1TP_001001_20200101_20200101_02_T1_MTL.txt").write_text(
        MTL_L1.replace(
            "  GROUP = PRODUCT_CONTENTS",
            "  GROUP = PROJECTION_ATTRIBUTES\n    CORNER_UL_PROJECTION_X_PRODUCT = 0\n"
            "    CORNER_UL_PROJECTION_Y_PRODUCT = 10\n    CORNER_LR_PROJECTION_X_PRODUCT = 10\n"
            "    CORNER_LR_PROJECTION_Y_PRODUCT = 0\n  END_GROUP = PROJECTION_ATTRIBUTES\n"
            "  GROUP = PRODUCT_CONTENTS",
        )
    )
    scene = write_raster(tmp_path / "elsewhere.tif", np.ones((6, 8, 8), np.uint16))
    assert find_landsat_mtl(str(scene)) is not None  # the only MTL in the folder...
    assert open_scene(scene).landsat_mtl is None  # ...but its extent is elsewhere


@pytest.mark.parametrize(
    ("tags", "offset", "surface"),
    [
        # as GDAL's SENTINEL2 driver and exporters copy a product's metadata
        ({"PROCESSING_BASELINE": "05.09", "PRODUCT_TYPE": "S2MSI2A"}, -0.1, True),
        ({"processing_baseline": "N0400", "product_type": "S2MSI1C"}, -0.1, False),
        ({"PROCESSING_BASELINE": "03.01", "PRODUCT_TYPE": "S2MSI2A"}, 0.0, True),
        ({"BOA_ADD_OFFSET_B2": "-1000", "BOA_ADD_OFFSET_B8": "-1000"}, -0.1, True),
        ({"BOA_ADD_OFFSET": "1000"}, -0.1, True),  # the shift written the other way round
        ({"RADIO_ADD_OFFSET": "-1000"}, -0.1, False),
        ({"BOA_ADD_OFFSET": "0", "PRODUCT_TYPE": "S2MSI2A"}, 0.0, True),
    ],
)
def test_a_sentinel2_baseline_said_in_the_tags(
    tags: dict[str, str], offset: float, surface: bool
) -> None:
    got = resolve_radiometry(info(tags=tags), (1, 2, 3, 4, 5, 6), SIX)
    assert got.scale == (1e-4,) * 6 and got.offset == (offset,) * 6
    assert got.surface is surface and not got.assumed and "tag" in got.source


def test_a_geotiff_s_sentinel2_tags_reach_the_decision(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "export.tif", np.full((6, 8, 8), 1500, np.uint16))
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(PROCESSING_BASELINE="05.10", PRODUCT_TYPE="S2MSI2A")
    got = resolve_radiometry(open_scene(path).radiometric_info(), (1, 2, 3, 4, 5, 6), SIX)
    assert got.offset == (-0.1,) * 6 and "PROCESSING_BASELINE" in got.source


@pytest.mark.parametrize(
    "tags",
    [
        {"PROCESSING_BASELINE": "05.09"},  # no level: the offset alone is not enough to say
        {"BOA_ADD_OFFSET": "-1000", "BOA_QUANTIFICATION_VALUE": "1000"},
        {"BOA_ADD_OFFSET_B2": "-1000", "BOA_ADD_OFFSET_B3": "0"},  # contradictory
        {"BOA_ADD_OFFSET": "junk"},
    ],
)
def test_sentinel2_tags_that_say_too_little_are_not_read(tags: dict[str, str]) -> None:
    got = resolve_radiometry(info(tags=tags), (1, 2, 3, 4, 5, 6), SIX)
    assert got.assumed and got.offset == (0.0,) * 6


def _predicted_with_warnings(
    tmp_path: Path,
    fake_model: Path,
    caplog: pytest.LogCaptureFixture,
    data: np.ndarray,
    **written: Any,
) -> np.ndarray:
    """The class map of ``data`` written as a scene; the warnings said are in ``caplog``."""
    scene = write_raster(tmp_path / "scene.tif", data, **written)
    out = tmp_path / "classes.tif"
    with caplog.at_level("WARNING", logger="geoseg"):
        predict(scene, None, model=fake_model, raster=out)
    with rasterio.open(out) as src:
        return np.asarray(src.read(1))


def test_undeclared_zero_fill_is_nodata_and_said(
    tmp_path: Path, fake_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = np.random.default_rng(0).integers(100, 3000, (6, 40, 50)).astype(np.uint16)
    data[:, :, :10] = 0  # a collar of zeros, no nodata declared, and a wrong nodata tag
    classes = _predicted_with_warnings(tmp_path, fake_model, caplog, data, nodata=1)
    assert "0 in every band: treated as nodata" in caplog.text
    assert (classes[:, :10] == 255).all() and (classes[:, 10:] != 255).all()


@pytest.mark.parametrize(
    ("dtype", "fill"), [("int16", -9999), ("int16", -32768), ("float32", -9999.0)]
)
def test_undeclared_negative_fill_is_nodata_and_said(
    tmp_path: Path, fake_model: Path, caplog: pytest.LogCaptureFixture, dtype: str, fill: float
) -> None:
    data = np.random.default_rng(0).integers(100, 3000, (6, 40, 50)).astype(dtype)
    data[:, :, :10] = fill  # the fill of many reflectance exports, no nodata declared
    data[0, 20:, 30:] = fill  # one band at the fill value is not a fill pixel
    if dtype == "float32":
        data = data / np.float32(10000)
        data[:, :, :10] = fill
    classes = _predicted_with_warnings(tmp_path, fake_model, caplog, data)
    assert f"{fill:g} in every band: treated as nodata" in caplog.text
    assert (classes[:, :10] == 255).all() and (classes[:, 10:] != 255).all()


def test_not_a_number_pixels_are_nodata_and_said(
    tmp_path: Path, fake_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = np.random.default_rng(0).uniform(0.01, 0.3, (6, 40, 50)).astype(np.float32)
    data[2, :, :10] = np.nan  # one band without a value is enough to leave the pixel unknown
    data[:, :5, 40:] = np.inf
    classes = _predicted_with_warnings(tmp_path, fake_model, caplog, data)
    assert "NaN or infinite in some band: treated as nodata" in caplog.text
    unknown = np.zeros((40, 50), bool)
    unknown[:, :10] = True
    unknown[:5, 40:] = True
    assert (classes[unknown] == 255).all() and (classes[~unknown] != 255).all()


def test_decisions_are_said_and_recorded(tmp_path: Path, fake_model: Path) -> None:
    scene = write_raster(tmp_path / "s.tif", np.full((6, 20, 20), 500, np.uint16))
    run = prepare(scene, fake_model, PredictOptions())
    decided = run.decisions()
    assert decided["radiometry"]["assumed"] and decided["radiometry"]["scale"] == [1e-4] * 6
    assert "1 (blue) -> blue" in decided["bands"] and "by names" in decided["bands"]
    result = CliRunner().invoke(
        main,
        ["predict", str(scene), "--out", str(tmp_path / "o.gpkg"), "--model", str(fake_model)],
    )
    assert "reflectance: assumed reflectance x 10000" in result.output
    report = (tmp_path / "o.report.json").read_text()
    assert '"radiometry"' in report and '"assumed": true' in report


def test_cli_radiometry_errors_are_one_line_before_reading(
    tmp_path: Path, fake_model: Path
) -> None:
    scene = write_raster(tmp_path / "s.tif", np.full((6, 20, 20), 500, np.uint16))
    for extra, needle in (
        (["--product", "dn8", "--scale", "0.1"], "either --product or --scale"),
        (["--scale", "0.1,0.2"], "give one, or one per model band"),
        (["--product", "jpeg"], "unknown product"),
    ):
        result = CliRunner().invoke(
            main,
            [
                "predict",
                str(scene),
                "--out",
                str(tmp_path / "o.gpkg"),
                "--model",
                str(fake_model),
                *extra,
            ],
        )
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and needle in lines[0], result.output
    assert not (tmp_path / "o.gpkg").exists()


def test_invalid_scene_error_names_missing_landsat_band() -> None:
    with pytest.raises(InvalidSceneError, match="no Landsat band for 'rededge1'"):
        landsat_radiometry(parse_mtl(MTL_L1), ("rededge1",), "x_MTL.txt")


def test_surface_reflectance_gets_a_path_for_toa_models() -> None:
    bands = (1, 2, 3, 4, 5, 6)
    sr = resolve_radiometry(info(name="LC09_L2SP_231062_20230723_SR.tif"), bands, SIX)
    assert sr.surface is True
    toa_look = to_model_level(sr, SIX, "toa")
    added = [b - a for a, b in zip(sr.offset, toa_look.offset, strict=True)]
    assert added == pytest.approx([0.07, 0.045, 0.03, 0.015, 0.005, 0.002])
    assert "path reflectance" in toa_look.source
    # models that take any reflectance, and top-of-atmosphere or unknown inputs, are left alone
    assert to_model_level(sr, SIX, "any") == sr
    toa = resolve_radiometry(info(name="LC08_L1TP_017051_x.tif"), bands, SIX)
    assert toa.surface is False and to_model_level(toa, SIX, "toa") == toa
    unknown = resolve_radiometry(info(), bands, SIX)
    assert unknown.surface is None and to_model_level(unknown, SIX, "toa") == unknown
    product = RadiometryRequest(product="surface-reflectance-x1000")
    assert resolve_radiometry(info(), bands, SIX, product).surface is True


def test_what_had_to_be_assumed_is_refined_from_the_values() -> None:
    rng = np.random.default_rng(0)
    bands = (1, 2, 3, 4, 5, 6)
    assumed = resolve_radiometry(info(), bands, SIX)
    valid = np.ones(2000, bool)

    def sample(
        reflectance_low: float,
        reflectance_high: float,
        scale: float,
        offset: float,
        sky: tuple[float, ...] = (0.0,) * 6,
    ) -> np.ndarray:
        r = rng.uniform(reflectance_low, reflectance_high, (6, 2000)) + np.array(sky)[:, None]
        dn: np.ndarray = np.round((r - offset) / scale)
        return dn

    # Landsat Collection 2 Level-1 DN of a scene with water (dark short-wave infrared): top of
    # the atmosphere, the sky's light brightens the blue most
    path = (0.08, 0.05, 0.03, 0.015, 0.005, 0.002)
    l1 = assume_from_sample(assumed, sample(0.01, 0.4, 2e-5, -0.1, path), valid, SIX)
    assert l1.scale == (2e-5,) * 6 and l1.surface is False and "Level-1" in l1.source
    # Level-2 surface reflectance DN
    l2 = assume_from_sample(assumed, sample(0.0, 0.4, 2.75e-5, -0.2), valid, SIX)
    assert l2.scale == (2.75e-5,) * 6 and l2.surface is True
    # reflectance x 10000: the scale stays, the level comes from the darkest blue
    surface = assume_from_sample(assumed, sample(0.005, 0.4, 1e-4, 0.0), valid, SIX)
    assert surface.scale == (1e-4,) * 6 and surface.surface is True
    toa = assume_from_sample(assumed, sample(0.06, 0.4, 1e-4, 0.0), valid, SIX)
    assert toa.surface is False
    # what the file or the user said is never second-guessed
    declared = resolve_radiometry(info(scales=(1e-4,) * 6), bands, SIX)
    kept = assume_from_sample(declared, sample(0.01, 0.4, 2e-5, -0.1, path), valid, SIX)
    assert kept.scale == (1e-4,) * 6
    l2_named = resolve_radiometry(info(name="LC08_L2SP_x.tif"), bands, SIX)
    assert assume_from_sample(l2_named, sample(0.06, 0.4, 2.75e-5, -0.2), valid, SIX) == l2_named


def test_floats_far_above_reflectance_are_read_as_the_integers_they_were() -> None:
    rng = np.random.default_rng(2)
    bands = (1, 2, 3, 4, 5, 6)
    assumed = resolve_radiometry(info(dtype="float32"), bands, SIX)
    assert assumed.scale == (1.0,) * 6
    valid = np.ones(2000, bool)
    reflectance = rng.uniform(0.005, 0.4, (6, 2000))
    # reflectance x 10000 exported as floats
    scaled = assume_from_sample(assumed, reflectance * 1e4, valid, SIX)
    assert scaled.scale == (1e-4,) * 6 and scaled.surface is True and "float data" in scaled.source
    # Landsat Collection 2 Level-2 DN exported as floats: recognised as the integers would be
    dn = (reflectance + 0.2) / 2.75e-5
    assert assume_from_sample(assumed, dn, valid, SIX).scale == (2.75e-5,) * 6
    # 0-1 reflectance, bright desert and cloud included, stays as it is
    bright = assume_from_sample(assumed, reflectance * 3.0, valid, SIX)
    assert bright.scale == (1.0,) * 6
    # and floats the file declares a scale for are never second-guessed
    declared = resolve_radiometry(info(dtype="float32", scales=(1e-4,) * 6), bands, SIX)
    assert assume_from_sample(declared, reflectance * 1e4, valid, SIX).scale == (1e-4,) * 6


def _land(rng: np.random.Generator, vegetation: float, nir: tuple[float, float]) -> np.ndarray:
    """Reflectance ``(6, 2000)`` of SIX: a share of vegetation (near infrared in ``nir``), water."""
    count = 2000
    r = rng.uniform(0.0, 0.04, (6, count))  # water: dark everywhere, darkest in the infrared
    r[3:] *= 0.5
    green = int(vegetation * count)
    r[:, :green] = rng.uniform(0.01, 0.06, (6, green))  # visible and short-wave: dark
    r[3, :green] = rng.uniform(*nir, green)  # near infrared: bright
    return r


def test_integers_with_ten_times_too_dark_vegetation_are_reflectance_x1000() -> None:
    rng = np.random.default_rng(3)
    bands = (1, 2, 3, 4, 5, 6)
    assumed = resolve_radiometry(info(), bands, SIX)
    assert assumed.scale == (1e-4,) * 6
    valid = np.ones(2000, bool)
    x1000 = assume_from_sample(assumed, np.round(_land(rng, 0.3, (0.2, 0.5)) * 1e3), valid, SIX)
    assert x1000.scale == (1e-3,) * 6 and x1000.assumed and "x 1000" in x1000.source
    assert x1000.surface is not None  # the level is then read at the right scale
    # x 10000 stays x 10000, dark winter conifers (near infrared 0.12-0.2) included
    dark = assume_from_sample(assumed, np.round(_land(rng, 0.3, (0.12, 0.2)) * 1e4), valid, SIX)
    assert dark.scale == (1e-4,) * 6
    # no vegetation, no evidence: open sea at x 1000 keeps the type's assumption
    sea = assume_from_sample(assumed, np.round(_land(rng, 0.0, (0.2, 0.5)) * 1e3), valid, SIX)
    assert sea.scale == (1e-4,) * 6
    # a declared scale is never second-guessed
    declared = resolve_radiometry(info(scales=(1e-4,) * 6), bands, SIX)
    kept = assume_from_sample(declared, np.round(_land(rng, 0.3, (0.2, 0.5)) * 1e3), valid, SIX)
    assert kept.scale == (1e-4,) * 6


def test_floats_in_percent_or_thousandths_are_read_at_their_vegetation_scale() -> None:
    rng = np.random.default_rng(4)
    bands = (1, 2, 3, 4, 5, 6)
    assumed = resolve_radiometry(info(dtype="float32"), bands, SIX)
    valid = np.ones(2000, bool)
    land = _land(rng, 0.3, (0.2, 0.5))
    percent = assume_from_sample(assumed, (land * 100).astype(np.float32), valid, SIX)
    assert percent.scale == (1e-2,) * 6 and percent.assumed and "percent" in percent.source
    thousandths = assume_from_sample(assumed, (land * 1e3).astype(np.float32), valid, SIX)
    assert thousandths.scale == (1e-3,) * 6
    tenthousandths = assume_from_sample(assumed, (land * 1e4).astype(np.float32), valid, SIX)
    assert tenthousandths.scale == (1e-4,) * 6
    # integers are never read as percent (no product stores reflectance so): at the smallest
    # integer scale, x 1000, this near infrared (20-50) is too dark to be vegetation, so nothing
    # is learnt and the type's x 10000 stays
    integers = resolve_radiometry(info(), bands, SIX)
    as_int = assume_from_sample(integers, np.round(land * 100).astype(np.uint16), valid, SIX)
    assert as_int.scale == (1e-4,) * 6
    # the data type, not the shape of the assumption, says what is a float: the same integers
    # under the 0-1 assumption are not offered the float scales (percent among them)
    as_int_0_1 = assume_from_sample(assumed, np.round(land * 100).astype(np.uint16), valid, SIX)
    assert as_int_0_1.scale == (1.0,) * 6


def test_eight_bit_short_wave_infrared_is_satellite_dn() -> None:
    bands = (1, 2, 3, 4, 5, 6)
    landsat = resolve_radiometry(info(dtype="uint8"), bands, SIX)
    assert landsat.scale == (0.0015,) * 6 and "Landsat TM/ETM+" in landsat.source
    photo = resolve_radiometry(info(dtype="uint8"), (1, 2, 3), ("red", "green", "blue"))
    assert photo.scale == pytest.approx((1 / 255,) * 3)


def test_level1_dn_without_mtl_are_divided_by_the_sun_elevation_of_their_date_and_place() -> None:
    bands = (1, 2, 3, 4, 5, 6)
    parana: dict[str, Any] = {
        "acquired": "2020-05-18",
        "centre": (-54.5, -25.3),
        "sensor": "landsat-oli",
    }
    named = resolve_radiometry(info(name="LC08_L1TP_224078_20200518_x.tif", **parana), bands, SIX)
    elevation = landsat_sun_elevation(-54.5, -25.3, 139, "landsat-oli")
    assert 30 < elevation < 45  # late autumn in the southern hemisphere
    sine = math.sin(math.radians(elevation))
    assert named.scale == pytest.approx((2e-5 / sine,) * 6)
    assert named.offset == pytest.approx((-0.1 / sine,) * 6)
    assert named.assumed and "2020-05-18" in named.source and "25.3 S" in named.source
    # the same by --product and when recognised from the values
    product = RadiometryRequest(product="landsat-c2-l1")
    assert resolve_radiometry(info(**parana), bands, SIX, product).scale == named.scale
    rng = np.random.default_rng(1)
    sky = np.array([0.08, 0.05, 0.03, 0.015, 0.005, 0.002])[:, None]
    dn = np.round((rng.uniform(0.01, 0.4, (6, 2000)) + sky + 0.1) / 2e-5)
    described = info(**parana)
    by_values = assume_from_sample(
        resolve_radiometry(described, bands, SIX), dn, np.ones(2000, bool), SIX, described
    )
    assert by_values.scale == named.scale
    # the same place in its summer: a higher sun, a smaller gain
    summer = resolve_radiometry(info(**{**parana, "acquired": "2020-12-18"}), bands, SIX, product)
    assert summer.scale[0] < named.scale[0]
    # no date: an equinox, said; no place: no correction, said
    undated = landsat_level1(info(centre=(-54.5, -25.3)), 6, "x", assumed=True)
    assert "equinox" in undated.source
    assert "no place known" in landsat_level1(info(), 6, "x", assumed=True).source
    # a polar night cannot be corrected: a clear error, not a division by nearly zero
    with pytest.raises(InvalidSceneError, match="sun is"):
        landsat_level1(info(acquired="2020-12-21", centre=(20.0, 78.0)), 6, "x", True)


def test_estimated_sun_elevation_matches_every_mtl_in_the_data(shared_data: Path) -> None:
    from datetime import date

    mtls = sorted(shared_data.glob("*/*_MTL.txt"))
    assert mtls, "no MTL file found in the shared data"
    for path in mtls:
        mtl = parse_mtl(path.read_text())
        corners = ("UL", "UR", "LL", "LR")
        lat = sum(float(mtl[f"CORNER_{c}_LAT_PRODUCT"]) for c in corners) / 4
        lon = sum(float(mtl[f"CORNER_{c}_LON_PRODUCT"]) for c in corners) / 4
        day = date.fromisoformat(mtl["DATE_ACQUIRED"]).timetuple().tm_yday
        oli = mtl["SPACECRAFT_ID"] in ("LANDSAT_8", "LANDSAT_9")
        estimate = landsat_sun_elevation(lon, lat, day, "landsat-oli" if oli else "landsat-tm")
        assert estimate == pytest.approx(float(mtl["SUN_ELEVATION"]), abs=1.0), path.name


def test_a_scene_says_its_date_place_and_sensor(tmp_path: Path) -> None:
    path = write_raster(
        tmp_path / "LC08_224078_20200518_rgb.tif",
        np.full((3, 8, 8), 7000, np.uint16),
        descriptions=("red", "green", "blue"),
    )
    described = open_scene(path).radiometric_info()
    assert described.acquired == "2020-05-18" and described.sensor == "landsat-oli"
    assert described.centre is not None
    lon, lat = described.centre
    # UTM 18N, easting 400 km, northing 4000 km: about 36.1 N, 76.1 W
    assert lon == pytest.approx(-76.1, abs=0.1) and lat == pytest.approx(36.1, abs=0.1)


@pytest.mark.parametrize(
    ("name", "descriptions", "tags", "sensor"),
    [
        ("scene.tif", ("B2", "B3", "B4", "B8", "B11", "B12"), {}, None),
        ("landsat8_parana.tif", ("B2", "B3", "B4", "B5", "B6", "B7"), {}, "landsat-oli"),
        ("Landsat-5 scene.tif", ("B1", "B2", "B3", "B4", "B5", "B7"), {}, "landsat-tm"),
        ("scene.tif", ("B1", "B2", "B3", "B4", "B5", "B7"), {"SENSOR": "TM"}, "landsat-tm"),
        ("scene.tif", ("B2", "B3", "B4", "B5", "B6", "B7"), {"SENSOR": "OLI_TIRS"}, "landsat-oli"),
        ("OLINDA.tif", ("B2", "B3", "B4", "B8", "B11", "B12"), {}, None),
        ("export.tif", ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"), {}, "landsat-oli"),
        ("export.tif", ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"), {}, "landsat-tm"),
        # bare ids that only Landsat numbers so: OLI's B2-B7, TM's B1-B5 and B7
        ("scene.tif", ("B2", "B3", "B4", "B5", "B6", "B7"), {}, "landsat-oli"),
        ("scene.tif", ("B1", "B2", "B3", "B4", "B5", "B7"), {}, "landsat-tm"),
        ("scene.tif", ("B02", "B03", "B04", "B08", "B11", "B12"), {}, None),
        # a cloud mask band beside them says nothing of the numbering
        ("scene.tif", ("B1", "B2", "B3", "B4", "B5", "B7", "QA_PIXEL"), {}, "landsat-tm"),
        ("scene.tif", ("B2", "B3", "B4", "B8", "B11", "B12", "SCL"), {}, None),
    ],
)
def test_the_sensor_that_numbers_the_bands(
    tmp_path: Path, name: str, descriptions: tuple[str, ...], tags: dict[str, str], sensor: str
) -> None:
    from geoseg.bands import resolve_bands

    path = write_raster(
        tmp_path / name,
        np.full((len(descriptions), 8, 8), 9000, np.uint16),
        descriptions=descriptions,
    )
    if tags:
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
    scene = open_scene(path)
    assert scene.sensor == sensor
    # whatever the numbering, the six bands come out as the six-band model's, in its order
    match = resolve_bands(SIX, scene.descriptions, None, scene.colors, scene.sensor)
    assert match.indexes == (1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize(
    ("name", "tags", "sensor"),
    [
        ("export.tif", {}, "landsat"),
        ("LC08_L2SP_224078_20200518_export.tif", {}, "landsat-oli"),
        ("export.tif", {"SPACECRAFT_ID": "LANDSAT_5"}, "landsat-tm"),
    ],
)
def test_landsat_ids_that_could_be_either_landsat_are_refused_not_guessed(
    tmp_path: Path, name: str, tags: dict[str, str], sensor: str
) -> None:
    from geoseg.bands import resolve_bands
    from geoseg.errors import BandMappingError, ModelError
    from geoseg.models.loading import choose_default_model

    # an RGB-NIR export: SR_B2 is blue on Landsat 8/9 and green on Landsat 4-7
    path = write_raster(
        tmp_path / name,
        np.full((4, 8, 8), 9000, np.uint16),
        descriptions=("SR_B2", "SR_B3", "SR_B4", "SR_B5"),
    )
    if tags:
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
    scene = open_scene(path)
    assert scene.sensor == sensor
    rgbn = ("red", "green", "blue", "nir")
    if sensor == "landsat":
        with pytest.raises(BandMappingError, match="name the file as the product is"):
            resolve_bands(rgbn, scene.descriptions, None, scene.colors, scene.sensor)
        with pytest.raises(ModelError, match="Landsat band ids name other bands"):
            choose_default_model(scene.descriptions, scene.colors, scene.sensor)
        # the user's --bands decides
        chosen = resolve_bands(rgbn, scene.descriptions, ("3", "2", "1", "4"), sensor=scene.sensor)
        assert chosen.indexes == (3, 2, 1, 4)
    elif sensor == "landsat-oli":
        match = resolve_bands(rgbn, scene.descriptions, None, scene.colors, scene.sensor)
        assert match.indexes == (3, 2, 1, 4)
    else:  # TM: SR_B2-SR_B5 are green, red, nir and swir16: no blue for an RGB-NIR model
        with pytest.raises(BandMappingError, match="lack blue"):
            resolve_bands(rgbn, scene.descriptions, None, scene.colors, scene.sensor)


def test_naip_is_recognised_by_its_name_band_order_and_values(tmp_path: Path) -> None:
    from geoseg.bands import resolve_bands

    path = write_raster(
        tmp_path / "m_4709963_se_14_1_20090818.tif",
        np.full((4, 8, 8), 100, np.uint8),
        descriptions=(),
    )
    scene = open_scene(path)
    assert scene.sensor == "naip"
    rgbn = ("red", "green", "blue", "nir")
    match = resolve_bands(rgbn, scene.descriptions, None, scene.colors, scene.sensor)
    assert match.indexes == (1, 2, 3, 4) and "NAIP" in match.how
    got = resolve_radiometry(scene.radiometric_info(), match.indexes, rgbn)
    assert got.surface is True and got.assumed and "NAIP" in got.source
    # green crops' NIR is bright and their red dark, as in reflectance (DN / 255 makes red 0.27)
    crop = np.array([70, 95, 75, 185]) * np.array(got.scale) + np.array(got.offset)
    assert crop[0] < 0.1 and crop[3] > 0.35
    # asked for by name, for a model NAIP's bands can feed, and refused for one they cannot
    assert resolve_radiometry(info(), (1, 2, 3), rgbn[:3], RadiometryRequest(product="naip")).scale
    with pytest.raises(ConfigError, match="NAIP has no swir16"):
        resolve_radiometry(info(), (1, 2, 3, 4, 5, 6), SIX, RadiometryRequest(product="naip"))
    # any other unnamed 4-band file is still refused, not guessed
    other = write_raster(tmp_path / "ortho.tif", np.full((4, 8, 8), 100, np.uint8), descriptions=())
    with pytest.raises(Exception, match="no names"):
        resolve_bands(rgbn, open_scene(other).descriptions, None, (), open_scene(other).sensor)


def test_eight_bit_landsat_dn_without_mtl_follow_sensor_sun_and_distance(
    shared_data: Path,
) -> None:
    from geoseg.radiometry import landsat_dn8

    folder = shared_data / "landsat5-amazon-rstoolbox"
    mtl = parse_mtl((folder / "LT52240631988227CUB02_MTL.txt").read_text())
    exact = landsat_radiometry(mtl, SIX, "MTL")
    amazon = info(
        dtype="uint8", acquired="1988-08-14", centre=(-49.89, -3.75), spacecraft="LANDSAT_5"
    )
    typical = landsat_dn8(amazon, SIX)
    # the MTL's own gains, an estimated sun (50.4 vs 49.8 degrees): within 2% per band
    assert typical.scale == pytest.approx(exact.scale, rel=0.02)
    assert typical.offset == pytest.approx(exact.offset, rel=0.05)
    assert "TM DN" in typical.source and typical.surface is False
    # ETM+ records green and red at about 0.6x TM's radiance per DN; neither said: in between
    etm = landsat_dn8(dataclasses_replace(amazon, spacecraft="LANDSAT_7"), SIX)
    unsaid = landsat_dn8(dataclasses_replace(amazon, spacecraft=""), SIX)
    assert etm.scale[1] < unsaid.scale[1] < typical.scale[1]
    assert "not said" in unsaid.source
    # and the same scene resolved from what it says, with no MTL beside it
    got = resolve_radiometry(amazon, (1, 2, 3, 4, 5, 6), SIX)
    assert got.scale == typical.scale and got.assumed
    # a model of red, green, blue and near infrared reads the same file the same way: its
    # short-wave infrared bands are the scene's, not the model's (it was DN / 255 for it)
    rgbn = ("red", "green", "blue", "nir")
    unsaid_file = dataclasses_replace(amazon, spacecraft="", band_names=SIX)
    four = resolve_radiometry(unsaid_file, (3, 2, 1, 4), rgbn)
    assert four.scale == landsat_dn8(unsaid_file, rgbn).scale and "Landsat" in four.source
    # a file that says it is Landsat 5, with only its visible bands, is Landsat DN too
    visible = dataclasses_replace(amazon, band_names=("blue", "green", "red"))
    assert "Landsat TM DN" in resolve_radiometry(visible, (3, 2, 1), rgbn[:3]).source
    # an 8-bit orthophoto is not
    ortho = dataclasses_replace(amazon, spacecraft="", band_names=("red", "green", "blue"))
    assert resolve_radiometry(ortho, (1, 2, 3), rgbn[:3]).scale == (1 / 255,) * 3


def dataclasses_replace(described: SceneRadiometricInfo, **changes: object) -> SceneRadiometricInfo:
    import dataclasses

    return dataclasses.replace(described, **changes)  # type: ignore[arg-type]


def test_every_tile_of_a_landsat_file_is_read_as_its_level(shared_data: Path) -> None:
    """Tile files of one scene must not become different products (a 4 x 4 cut of each file)."""
    files = sorted((shared_data / "landsat-xlandsat").glob("*_B2-B7_*.tif"))
    assert files, "no Landsat stack in the shared data"
    nameless = info()  # as a tile file that lost its product name
    for path in files:
        level = "landsat-c2-l1" if "_L1TP_" in path.name else "landsat-c2-l2"
        expected = {"landsat-c2-l1": 2e-5, "landsat-c2-l2": 2.75e-5}[level]
        with rasterio.open(path) as src:
            data = src.read()
        height, width = data.shape[1:]
        for i in range(4):
            for j in range(4):
                tile = data[:, i * height // 4 : (i + 1) * height // 4, j * width // 4 :][
                    :, :, : width // 4
                ]
                valid = np.all(tile != 0, axis=0)
                if valid.sum() < 500:
                    continue
                got = assume_from_sample(
                    resolve_radiometry(nameless, (1, 2, 3, 4, 5, 6), SIX), tile, valid, SIX
                )
                assert got.scale[0] == pytest.approx(expected), (path.name, i, j, got.source)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int16"]),
    pixels=st.integers(1, 3000),
    spread=st.integers(1, 60000),
    seed=st.integers(0, 2**16),
)
def test_darkest_percent_is_numpys_percentile(
    dtype: str, pixels: int, spread: int, seed: int
) -> None:
    info = np.iinfo(dtype)
    low = max(int(info.min), -spread // 2) if info.min < 0 else 0
    high = min(int(info.max), low + spread)
    values = np.random.default_rng(seed).integers(low, high + 1, size=(3, pixels)).astype(dtype)
    expected = np.percentile(values.astype(np.float64), 1, axis=1)
    assert np.array_equal(darkest_percent(values), expected)


def _ground(rng: np.random.Generator, water_share: float, n: int = 4000) -> np.ndarray:
    """``(6, n)`` top-of-atmosphere reflectance: dry ground, and water on ``water_share``."""
    #              blue  green red   nir   swir16 swir22
    soil = np.array([0.10, 0.11, 0.13, 0.20, 0.26, 0.20])[:, None]
    lake = np.array([0.09, 0.07, 0.05, 0.02, 0.008, 0.005])[:, None]
    is_water = rng.random(n) < water_share
    reflectance = np.where(is_water, lake, soil) * rng.uniform(0.9, 1.1, (6, n))
    return np.asarray(reflectance)


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32"])
def test_sentinel2_values_of_baseline_04_are_found_by_their_water(dtype: str) -> None:
    rng = np.random.default_rng(1)
    assumed = resolve_radiometry(info(dtype=dtype), (1, 2, 3, 4, 5, 6), SIX)
    valid = np.ones(4000, bool)
    with_water = _ground(rng, 0.2)
    stored = np.round(with_water * 10000 + 1000).astype(dtype)  # the product's band files
    found = assume_from_sample(assumed, stored, valid, SIX)
    assert found.offset == (-0.1,) * 6 and found.scale == (1e-4,) * 6
    assert "processing baseline 04.00" in found.source and found.surface is False
    # surface reflectance: water a little under 0, stored a little under 1000
    surface_water = with_water - np.array([0.09, 0.06, 0.05, 0.025, 0.015, 0.012])[:, None]
    stored_surface = np.round(np.clip(surface_water, -0.015, None) * 10000 + 1000).astype(dtype)
    found_surface = assume_from_sample(assumed, stored_surface, valid, SIX)
    assert found_surface.offset == (-0.1,) * 6 and found_surface.surface is True
    # the same ground stored without the offset: its water is far under the floor
    plain = assume_from_sample(assumed, np.round(with_water * 10000).astype(dtype), valid, SIX)
    assert plain.offset == (0.0,) * 6
    # bright dry ground, no offset: nothing under 800 either, but no water appears with the
    # 1000 taken off, so nothing is taken off
    dry = np.round(_ground(rng, 0.0) * 10000).astype(dtype)
    assert assume_from_sample(assumed, dry, valid, SIX).offset == (0.0,) * 6
    # what the file declares is kept as it is
    declared = resolve_radiometry(info(scales=(1e-4,) * 6), (1, 2, 3, 4, 5, 6), SIX)
    assert assume_from_sample(declared, stored, valid, SIX).offset == (0.0,) * 6


def test_a_baseline_04_stack_gets_the_map_of_its_reflectance(
    tmp_path: Path, fake_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(2)
    ground = _ground(rng, 0.3, 48 * 40).reshape(6, 48, 40)
    plain = write_raster(tmp_path / "plain.tif", np.round(ground * 10000).astype(np.uint16))
    shifted = np.round(ground * 10000 + 1000).astype(np.uint16)
    offset = write_raster(tmp_path / "pb04.tif", shifted)
    maps = []
    for scene in (plain, offset):
        out = tmp_path / f"{scene.stem}.classes.tif"
        with caplog.at_level("WARNING", logger="geoseg"):
            predict(scene, None, model=fake_model, raster=out)
        with rasterio.open(out) as src:
            maps.append(src.read(1))
    assert "processing baseline 04.00 or later" in caplog.text
    np.testing.assert_array_equal(maps[0], maps[1])
