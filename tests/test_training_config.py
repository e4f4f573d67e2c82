"""Training configs: every shipped recipe loads, and bad recipes fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoseg.errors import ConfigError
from geoseg.training.config import load_train_config, train_config_from_dict

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("train*.yaml")) + sorted(
    (REPO / "configs").glob("finetune*.yaml")
)

MINIMAL = {
    "model": {"name": "m"},
    "scenes": [{"name": "a", "image": "a.tif", "labels": "l.tif"}],
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_train_config(path)
    assert config.scenes and config.model.name
    assert Path(config.base_dir) == path.parent


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = train_config_from_dict(MINIMAL, base_dir=tmp_path)
    assert config.optim.steps == 1000 and config.loss.name == "ce"
    assert config.resolve("a.tif") == tmp_path / "a.tif"
    assert config.resolve("/abs/a.tif") == Path("/abs/a.tif")


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: m}\nscenes: [{name: a, image: a.tif, labels: l.tif}]\n")
    config = load_train_config(path, ["optim.steps=3", "model.architecture=convnet"])
    assert config.optim.steps == 3 and config.model.architecture == "convnet"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optim": {"stepz": 3}}, "unknown key"),
        ({"optim": {"steps": "many"}}, "expected an integer"),
        ({"optim": {"lr": "fast"}}, "expected a number"),
        ({"optim": {"device": "tpu"}}, "is not one of"),
        ({"scenes": []}, "at least one"),
        ({"scenes": [{"name": "a", "labels": "l.tif"}]}, "either image or band_files"),
        (
            {"scenes": [{"name": "a", "image": "a", "labels": "l", "holdout": {"rows": [1]}}]},
            "expected 2 values",
        ),
        ({"colour": "red"}, "unknown key"),
        ({"scenes": [{"name": "a", "image": "a"}]}, "no labels and the recipe no teacher"),
        (
            {"scenes": [{"name": "a", "image": "a", "labels": "l", "product": "jpeg"}]},
            "unknown product 'jpeg'",
        ),
        (
            {"scenes": [{"name": "a", "image": "a", "labels": "l", "scale": [0.0]}]},
            "must be one or more values > 0",
        ),
        ({"loss": {"margin": -1}}, "0 or more pixels"),
        ({"loss": {"margin": 32}, "optim": {"patch_size": 64}}, "nothing of a 64 px patch"),
    ],
)
def test_bad_configs_are_config_errors(change: dict[str, object], message: str) -> None:
    data = {**MINIMAL, **change}
    with pytest.raises(ConfigError, match=message) as info:
        train_config_from_dict(data)
    assert "\n" not in str(info.value)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_train_config(tmp_path / "none.yaml")
