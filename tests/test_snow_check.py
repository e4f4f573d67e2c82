"""Snow only where snow can be: the SNOMAP test, in prediction, validation and teacher targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_card, save_fake_model, write_raster
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.core import ClassInfo
from geoseg.inference import Chips, Predictor, classify_normalized
from geoseg.models.loading import LoadedModel, load_model
from geoseg.normalization import InputTransform
from geoseg.radiometry import Radiometry
from geoseg.snow_check import SnowCheck
from geoseg.training.config import SceneConfig
from geoseg.training.prepare import prepare_scene
from geoseg.training.validation import model_input

BANDS = ("blue", "green", "nir", "swir16")
CLASSES = (
    ClassInfo(0, "built", "#c4281b"),
    ClassInfo(1, "snow_and_ice", "#b39fe1"),
    ClassInfo(2, "water", "#419bdf"),
)
# reflectance x 10000 of blue, green, nir, swir16
SNOW = (7000, 6500, 5500, 900)  # fresh snow: NDSI 0.76
ROOF = (890, 1070, 2740, 2100)  # a caravan park Dynamic World called snow: NDSI -0.32
DARK_WATER = (400, 500, 150, 40)  # NDSI 0.85 but dark: fails nir and green
JUST_SNOW = (5000, 3500, 2000, 1460)  # NDSI 0.411
JUST_NOT = (5000, 3500, 2000, 1540)  # NDSI 0.389


def _check() -> SnowCheck:
    check = SnowCheck.for_model([c.name for c in CLASSES], BANDS)
    assert check is not None
    return check


def _reflectance(*pixels: tuple[int, ...]) -> torch.Tensor:
    """``(1, bands, 1, pixels)`` reflectance of the model's four bands."""
    values = np.array(pixels, dtype=np.float32).T[None, :, None, :] / 10000
    return torch.from_numpy(values)


def test_the_check_applies_to_models_with_snow_and_the_three_bands() -> None:
    assert SnowCheck.for_model(["built", "snow_and_ice"], BANDS) == SnowCheck(1, (1, 2, 3))
    # no short-wave infrared (the RGB and RGBN models), or no snow class: nothing to check
    assert SnowCheck.for_model(["built", "snow_and_ice"], ("red", "green", "blue", "nir")) is None
    assert SnowCheck.for_model(["urban", "water"], BANDS) is None


def test_snow_passes_and_roofs_and_dark_water_fail() -> None:
    pixels = _reflectance(SNOW, ROOF, DARK_WATER, JUST_SNOW, JUST_NOT)
    assert _check().impossible(pixels)[0, 0].tolist() == [False, True, True, False, True]


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float32, (4, 3, 5), elements=st.floats(0.0, 1.0, width=32)),
    arrays(np.float32, (3, 3, 5), elements=st.floats(0.0625, 1.0, width=32)),
)
def test_ruled_out_snow_goes_to_the_others_in_proportion(
    reflectance: np.ndarray, weights: np.ndarray
) -> None:
    probabilities = weights / weights.sum(axis=0, keepdims=True)
    before = probabilities.copy()
    check = _check()
    after = check.rule_out_probabilities(probabilities, reflectance)
    ruled_out = check.impossible(torch.from_numpy(reflectance)[None])[0].numpy()
    assert np.all(after[1][ruled_out] == 0.0)
    np.testing.assert_allclose(after.sum(axis=0), 1.0, rtol=1e-5)
    # built and water keep their ratio; where snow can be, nothing moves
    np.testing.assert_allclose(
        (after[0] * before[2])[ruled_out], (after[2] * before[0])[ruled_out], rtol=1e-4
    )
    np.testing.assert_array_equal(after[:, ~ruled_out], before[:, ~ruled_out])


def _snow_loving_model(tmp_path: Path) -> LoadedModel:
    """A model whose logits are snow 6, built 3, water 0 at every pixel, whatever it sees."""
    card = make_card(bands=BANDS, classes=CLASSES)
    model = load_model(save_fake_model(tmp_path / "snowy.pt", card))
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.zero_()
        last = [m for m in model.network.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        assert last.bias is not None
        last.bias.copy_(torch.tensor([3.0, 6.0, 0.0]))
    return model


def _scene_values() -> np.ndarray:
    """``(bands, 8, 8)`` uint16: snow in the top half, roofs in the bottom half."""
    data = np.empty((4, 8, 8), np.uint16)
    data[:, :4] = np.array(SNOW, np.uint16)[:, None, None]
    data[:, 4:] = np.array(ROOF, np.uint16)[:, None, None]
    return data


def test_prediction_delivers_the_next_class_where_snow_cannot_be(tmp_path: Path) -> None:
    model = _snow_loving_model(tmp_path)
    radiometry = Radiometry((1e-4,) * 4, (0.0,) * 4, "test")
    predictor = Predictor(
        model, InputTransform(radiometry, model.card.normalization), torch.device("cpu")
    )
    chips = Chips(_scene_values()[None], np.ones((1, 8, 8), bool))
    classes = predictor.classify(chips)[0]
    assert np.all(classes[:4] == 1) and np.all(classes[4:] == 0)  # snow, then built
    _, confidence = predictor.classify_with_confidence(chips)
    # on the roofs all of snow's probability went to built and water, in their ratio
    assert np.all(confidence[0, 4:] == round(100 * np.exp(3) / (np.exp(3) + 1)))
    # training's validation and the benchmarks (one in-memory image) deliver the same
    reflectance = _scene_values().astype(np.float32) * 1e-4
    same = classify_normalized(
        model.network,
        model_input(reflectance, model.card),
        64,
        8,
        snow_check=_check(),
        reflectance=reflectance,
    )
    np.testing.assert_array_equal(same, classes)
    with pytest.raises(ValueError, match="reflectance"):
        classify_normalized(
            model.network, model_input(reflectance, model.card), 64, 8, snow_check=_check()
        )


def test_a_teachers_targets_have_no_snow_where_snow_cannot_be(tmp_path: Path) -> None:
    teacher = _snow_loving_model(tmp_path)
    image = write_raster(tmp_path / "scene.tif", _scene_values(), descriptions=BANDS)
    spec = SceneConfig(name="s", image=str(image), scale=(1e-4,), offset=(0.0,))
    scene = prepare_scene(spec, BANDS, CLASSES, tmp_path / "work", teacher=teacher)
    assert scene.soft is not None
    assert np.all(scene.soft[1, :4] > 0.9) and np.all(scene.soft[1, 4:] == 0.0)
    assert np.all(scene.labels[:4] == 1) and np.all(scene.labels[4:] == 0)


def test_a_run_delivers_roofs_as_built_and_reports_the_check(tmp_path: Path) -> None:
    import json

    import rasterio

    from geoseg import PredictOptions, predict
    from geoseg.radiometry import RadiometryRequest

    model = _snow_loving_model(tmp_path)
    scene = write_raster(tmp_path / "scene.tif", _scene_values(), descriptions=BANDS)
    options = PredictOptions(radiometry=RadiometryRequest(scale=(1e-4,), offset=(0.0,)))
    result = predict(
        scene, tmp_path / "lc.gpkg", model=model, raster=tmp_path / "classes.tif", options=options
    )
    with rasterio.open(tmp_path / "classes.tif") as raster:
        classes = raster.read(1)
    assert np.all(classes[:4] == 1) and np.all(classes[4:] == 0)
    assert result.report is not None
    report = json.loads(result.report.read_text())
    assert "SNOMAP" in json.dumps(report)
