"""Every shipped training recipe runs end to end on the real data, with a tiny model and budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_card, save_fake_model

from geoseg.io.model_file import load_model_file
from geoseg.training import load_train_config, train

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted(
    p for p in (REPO / "configs").glob("*.yaml") if p.name.startswith(("train", "finetune"))
)

TINY = [
    "model.architecture=convnet",
    "model.arch_params={layers: 1, width: 4}",
    "model.tile_size=256",
    "model.overlap=0",
    "optim.steps=2",
    "optim.batch_size=2",
    "optim.patch_size=32",
    "optim.threads=1",
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_runs_on_real_data(recipe: Path, shared_data: Path, tmp_path: Path) -> None:
    config = load_train_config(recipe)
    overrides = [*TINY, f"output={tmp_path / 'run'}"]
    for scene in config.scenes:
        # the recipes point at ../../shared/data; tests honour GEOSEG_SHARED_DATA as well
        assert "shared/data" in (scene.image or scene.band_files[0])
    # base_dir/../../shared/data must be the shared data, wherever GEOSEG_SHARED_DATA puts it
    base = tmp_path / "checkout" / "configs"
    base.mkdir(parents=True)
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    overrides.append(f"base_dir={base}")
    if config.model.init_from:
        card = make_card(bands=("red", "green", "blue"), arch_params={"layers": 1, "width": 4})
        overrides.append(f"model.init_from={save_fake_model(tmp_path / 'base.pt', card)}")
    result = train(load_train_config(recipe, overrides))
    card, _, _ = load_model_file(result.model_path)
    assert card.name == config.model.name
    assert card.training["command"].endswith(recipe.name)
    if any(s.holdout for s in config.scenes):
        assert card.metrics["held_out"]
