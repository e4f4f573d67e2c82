"""End to end on tiny rasters: train, write a model file, resume, fine-tune, evaluate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from conftest import S2_BANDS, make_card, save_fake_model, write_raster

from geoseg.errors import ConfigError, LabelError
from geoseg.models.architectures import ARCHITECTURES, build_network
from geoseg.models.loading import load_model, load_model_file
from geoseg.training import evaluate, train
from geoseg.training.config import train_config_from_dict
from geoseg.training.loop import Progress, transplant_weights

H, W = 40, 48


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    labels = np.zeros((H, W), dtype=np.uint8)
    labels[:, W // 2 :] = 1
    labels[H // 2 :, : W // 4] = 2
    data = rng.integers(100, 300, size=(6, H, W)).astype(np.uint16)
    data[:, labels == 1] += 1500  # separable: a tiny model learns it
    data[3, labels == 2] += 3000
    image = write_raster(tmp_path / "img.tif", data, descriptions=S2_BANDS)
    lab = write_raster(tmp_path / "lab.tif", labels[None], nodata=255)
    probs = np.zeros((3, H, W), dtype=np.uint8)
    for c in range(3):
        probs[c][labels == c] = 255
    prob = write_raster(tmp_path / "prob.tif", probs)
    return image, lab, prob


def recipe(tmp_path: Path, scene: tuple[Path, Path, Path], **optim: Any) -> dict[str, Any]:
    image, lab, prob = scene
    return {
        "output": str(tmp_path / "run"),
        "model": {
            "name": "tiny",
            "architecture": "convnet",
            "arch_params": {"layers": 2, "width": 8},
            "tile_size": 32,
            "overlap": 8,
            "provenance": {"metrics_reference": "synthetic labels"},
        },
        "scenes": [
            {
                "name": "syn",
                "image": str(image),
                "labels": str(lab),
                "probabilities": str(prob),
                "label_map": {"0": "water", "1": "forest", "2": "urban"},
                "holdout": {"cols": [36, 48]},
            }
        ],
        "loss": {"name": "ce", "distillation": 0.5, "class_weights": [1, 1, 1, 1, 1]},
        "augment": {
            "zoom_probability": 0.3,
            "blur_probability": 0.3,
            "focus_probability": 0.3,
            "focus_classes": ["urban"],
        },
        "optim": {
            "steps": 6,
            "batch_size": 2,
            "patch_size": 16,
            "lr": 0.01,
            "log_every": 2,
            "checkpoint_every": 3,
            "threads": 1,
            "warmup_steps": 1,
            **optim,
        },
    }


def test_train_writes_a_self_describing_model(tmp_path: Path, scene: Any) -> None:
    reports: list[Progress] = []
    result = train(train_config_from_dict(recipe(tmp_path, scene)), progress=reports.append)
    assert [r.step for r in reports] == [2, 4, 6]
    card, _, _ = load_model_file(result.model_path)
    assert card.bands == S2_BANDS and card.name == "tiny"
    assert card.metrics["reference"] == "synthetic labels"
    held = card.metrics["held_out"]["syn"]
    assert held["window"] == {"rows": [0, 40], "cols": [36, 48]}
    assert 0.0 <= held["miou"] <= 1.0
    assert card.training["recipe"]["optim"]["steps"] == 6
    assert result.megapixels_per_second > 0
    assert (tmp_path / "run" / "metrics.json").exists()
    load_model(result.model_path)  # loads as prediction would
    # the training pixels per class, outside the holdout (columns 36-47), written beside it
    balance = json.loads((tmp_path / "run" / "class_distribution.json").read_text())
    _, lab, _ = scene
    with rasterio.open(lab) as src:
        labels = src.read(1)[:, :36]
    expected = {"water": (labels == 0).sum(), "forest": (labels == 1).sum()}
    expected["urban"] = (labels == 2).sum()
    assert {k: balance["total"][k] for k in expected} == expected
    assert balance["scenes"]["syn"] == balance["total"]
    assert sorted(balance["absent"]) == ["farmland", "other"]


def test_resume_gives_the_same_weights(tmp_path: Path, scene: Any) -> None:
    whole = train(train_config_from_dict(recipe(tmp_path / "a", scene)))
    config = train_config_from_dict(recipe(tmp_path / "b", scene))

    def interrupt(report: Progress) -> None:
        if report.step == 4:  # after the checkpoint of step 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, progress=interrupt)
    assert not (tmp_path / "b" / "run" / "tiny.pt").exists()
    resumed = train(config)
    assert resumed.resumed_from == 3
    a = load_model_file(whole.model_path)[1]
    b = load_model_file(resumed.model_path)[1]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_channels_last_learns_the_same_weights(
    tmp_path: Path, scene: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # networks train in the memory format they run fastest in; the weights must not change
    assert ARCHITECTURES["convnet"].channels_last
    last = train(train_config_from_dict(recipe(tmp_path / "a", scene)))
    plain = dataclasses.replace(ARCHITECTURES["convnet"], channels_last=False)
    monkeypatch.setitem(ARCHITECTURES, "convnet", plain)
    first = train(train_config_from_dict(recipe(tmp_path / "b", scene)))
    a = load_model_file(last.model_path)[1]
    b = load_model_file(first.model_path)[1]
    for key in a:
        assert a[key].is_contiguous()  # the file holds plain layouts either way
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_the_view_loss_trains_a_model_that_delivers_a_view(tmp_path: Path, scene: Any) -> None:
    data = recipe(tmp_path, scene, steps=2)
    data["loss"]["view"] = 1.0
    # geoseg's five classes are delivered as they are: no groups to score
    with pytest.raises(ConfigError, match=r"loss\.view needs a model that delivers a view"):
        train(train_config_from_dict(data))
    data = recipe(tmp_path / "nine", scene, steps=2)
    data["model"]["classes"] = "dynamic_world"
    data["scenes"][0]["label_map"] = {"0": "water", "1": "trees", "2": "built"}
    data["scenes"][0].pop("probabilities")
    data["augment"]["focus_classes"] = ["built"]
    data["loss"] = {"name": "ce", "view": 1.0}
    result = train(train_config_from_dict(data))
    assert result.card.default_legend == "landcover" and len(result.card.classes) == 9
    assert result.card.training["recipe"]["loss"]["view"] == 1.0


def test_fine_tune_from_a_model(tmp_path: Path, scene: Any) -> None:
    base = save_fake_model(tmp_path / "base.pt", make_card(arch_params={"layers": 2, "width": 8}))
    data = recipe(tmp_path, scene, steps=2)
    data["model"]["init_from"] = str(base)
    data["model"].pop("architecture", None)
    data["model"].pop("arch_params", None)
    result = train(train_config_from_dict(data))
    assert result.card.architecture == "convnet"
    assert result.card.arch_params == {"layers": 2, "width": 8}
    assert result.card.training["fine_tuned_from"] == str(base)


def test_init_from_another_architecture_copies_the_shared_encoder() -> None:
    unet = build_network("unet", 6, 5, {"encoder_name": "resnet18", "encoder_depth": 5})
    pspnet = build_network("pspnet", 6, 5, {"encoder_name": "resnet18", "encoder_depth": 3})
    copied = transplant_weights(pspnet, unet.state_dict())
    encoder = {k: v for k, v in pspnet.state_dict().items() if k.startswith("encoder.")}
    assert copied >= len(encoder) > 0  # the encoder, plus any head tensor of equal shape
    for key, value in encoder.items():
        assert torch.equal(value, unet.state_dict()[key])
    # the unused ResNet stages of a depth-3 encoder are not carried
    assert not any(k.startswith(("encoder.layer3", "encoder.layer4")) for k in encoder)
    with pytest.raises(ConfigError, match="shares no layer"):
        transplant_weights(build_network("convnet", 2, 3, {"layers": 1}), unet.state_dict())


def test_fine_tune_into_another_architecture(tmp_path: Path, scene: Any) -> None:
    base = save_fake_model(tmp_path / "base.pt", make_card(arch_params={"layers": 2, "width": 8}))
    data = recipe(tmp_path, scene, steps=2)
    data["model"]["init_from"] = str(base)
    data["model"]["architecture"] = "convnet"
    data["model"]["arch_params"] = {"layers": 3, "width": 8}
    result = train(train_config_from_dict(data))
    assert result.card.arch_params == {"layers": 3, "width": 8}
    assert (result.card.tile_size, result.card.overlap) == (32, 8)  # the recipe's, not the base's


def test_bad_recipe_fails_before_training(tmp_path: Path, scene: Any) -> None:
    data = recipe(tmp_path, scene)
    data["augment"]["focus_classes"] = ["glacier"]
    with pytest.raises(ConfigError, match="glacier"):
        train(train_config_from_dict(data))
    data = recipe(tmp_path, scene)
    data["loss"]["class_weights"] = [1, 2]
    with pytest.raises(ConfigError, match="class_weights"):
        train(train_config_from_dict(data))
    data = recipe(tmp_path, scene)
    data["scenes"][0]["label_map"] = {"0": "ignore", "1": "ignore", "2": "ignore"}
    with pytest.raises(LabelError, match="no pixel is labelled"):
        train(train_config_from_dict(data))


def test_evaluate_scores_a_window_with_a_label_map(tmp_path: Path, scene: Any) -> None:
    image, lab, _ = scene
    model = train(train_config_from_dict(recipe(tmp_path, scene))).model_path
    result = evaluate(
        model, image, lab, label_map={"0": "water", "1": "forest", "2": "urban"}, cols=(36, 48)
    )
    assert result.window == (0, 40, 36, 48)
    assert sum(result.metrics.support) == H * 12
    out = tmp_path / "eval.json"
    result.write_json(out)
    assert '"miou"' in out.read_text()
    assert "mIoU" in result.metrics.format_table()
    # the library's writer, like the CLI, never replaces what was evaluated
    labels_before = Path(lab).read_bytes()
    for evaluated in (lab, image, model):
        with pytest.raises(ConfigError, match="an input of this run"):
            result.write_json(evaluated)
    assert Path(lab).read_bytes() == labels_before


def test_fine_tune_onto_fewer_bands_keeps_their_filters(tmp_path: Path, scene: Any) -> None:
    base = save_fake_model(tmp_path / "base.pt", make_card(arch_params={"layers": 2, "width": 8}))
    data = recipe(tmp_path, scene, steps=1, lr=1e-9)
    data["model"]["init_from"] = str(base)
    data["model"]["bands"] = ["red", "green", "blue"]
    result = train(train_config_from_dict(data))
    assert result.card.bands == ("red", "green", "blue")
    before = load_model_file(base)[1]["body.0.weight"]
    after = load_model_file(result.model_path)[1]["body.0.weight"]
    assert after.shape[1] == 3
    # red, green, blue were channels 3, 2, 1 of the six-band model (scaled by 6 / 3)
    assert torch.allclose(after, before[:, [2, 1, 0]] * 2, atol=1e-2)


def test_training_through_torchgeo_datasets(tmp_path: Path, scene: Any) -> None:
    data = recipe(tmp_path, scene, steps=3)
    data["optim"]["sampler"] = "torchgeo"
    result = train(train_config_from_dict(data))
    assert result.steps == 3 and result.metrics["syn"]["miou"] is not None
    assert result.card.training["recipe"]["optim"]["sampler"] == "torchgeo"
    # the datasets torchgeo read: reflectance bands + teacher probabilities, and labels
    written = sorted(p.name for p in (tmp_path / "run" / "prepared" / "torchgeo").iterdir())
    assert written == ["syn-labels.tif", "syn-reflectance.tif"]


@pytest.mark.parametrize(
    ("architecture", "params"),
    [
        ("deeplabv3plus", {"encoder_name": "resnet18", "decoder_channels": 16}),
        ("fpn", {"encoder_name": "resnet18", "pyramid_channels": 32, "segmentation_channels": 32}),
        ("segnet", {"widths": [8, 16]}),
        ("dynamic_world", {}),  # the embedded models' network: its head's gradients in use
    ],
)
def test_the_comparison_architectures_train_from_a_recipe(
    tmp_path: Path, scene: Any, architecture: str, params: dict[str, Any]
) -> None:
    config = recipe(tmp_path, scene, steps=2, batch_size=2, patch_size=32)
    config["model"].update(architecture=architecture, arch_params=params, tile_size=64)
    result = train(train_config_from_dict(config))
    loaded = load_model(result.model_path)
    assert loaded.card.architecture == architecture
    image = torch.zeros(1, 6, 64, 64)
    assert loaded.network(image).shape == (1, 5, 64, 64)


def test_coarsened_averages_blocks_and_keeps_nodata() -> None:
    from geoseg.training.loop import coarsened

    image = np.full((2, 12, 12), 0.2, np.float32)
    image[0, :, ::2] = 0.4  # stripes a 3-pixel average blurs to 0.3 +- 0.1/3
    image[:, :3, :3] = 0.0  # a nodata corner
    out = coarsened(image, 3)
    assert out.shape == image.shape
    assert (out[:, :3, :3] == 0).all()  # still nodata, and its zeros not averaged in:
    np.testing.assert_allclose(out[1, 3:, 3:], 0.2, rtol=1e-6)
    assert np.abs(out[0, 4:-4, 4:-4] - 0.3).max() < 0.04
    np.testing.assert_array_equal(coarsened(image, 1)[:, 3:, 3:], image[:, 3:, 3:])
    # a fractional factor (15 m seen from 10 m) blurs a bright point less than 2 does
    point = np.full((1, 12, 12), 0.2, np.float32)
    point[0, 6, 6] = 1.0
    peaks = [float(coarsened(point, factor).max()) for factor in (1.5, 2, 3)]
    assert 1.0 > peaks[0] > peaks[1] > peaks[2] > 0.2


def test_validate_coarsen_scores_the_holdout_as_a_coarser_sensor_sees_it(
    tmp_path: Path, scene: Any
) -> None:
    result = train(train_config_from_dict(recipe(tmp_path, scene, validate_coarsen=2)))
    coarse = result.card.metrics["held_out_coarsened_x2"]["syn"]
    assert coarse["window"] == {"rows": [0, 40], "cols": [36, 48]}
    assert 0.0 <= coarse["miou"] <= 1.0
    assert "coarsened_x2" in json.loads((tmp_path / "run" / "metrics.json").read_text())
    with pytest.raises(ConfigError, match="validate_coarsen"):
        train_config_from_dict(recipe(tmp_path, scene, validate_coarsen=0))
