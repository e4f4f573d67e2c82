"""Every shipped training recipe runs end to end on the real data, with a tiny model and budget."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_card, save_fake_model

from geoseg.models.catalogue import DYNAMIC_WORLD_BANDS, DYNAMIC_WORLD_CLASSES, LANDCOVER_VIEW
from geoseg.models.loading import load_model_file
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
    # fake base and teacher models with the embedded models' classes, so the recipe's own
    # steps (teacher labelling, band re-plumbing, legends) all run, on a tiny budget
    nine = {
        "classes": DYNAMIC_WORLD_CLASSES,
        "legends": (LANDCOVER_VIEW,),
        "default_legend": "landcover",
        "arch_params": {"layers": 1, "width": 4},
    }
    if config.teacher:
        teacher = make_card(bands=DYNAMIC_WORLD_BANDS, tile_size=256, overlap=8, **nine)
        overrides.append(f"teacher={save_fake_model(tmp_path / 'teacher.pt', teacher)}")
    if config.model.init_from:
        card = make_card(bands=config.model.bands or ("red", "green", "blue"), **nine)
        overrides.append(f"model.init_from={save_fake_model(tmp_path / 'base.pt', card)}")
    # the teacher recipes' 21 small Tanzania dates add nothing but time here: the first 4 scenes
    result = train(replace(load_train_config(recipe, overrides), scenes=config.scenes[:4]))
    card, _, _ = load_model_file(result.model_path)
    assert card.name == config.model.name
    assert f"geoseg train configs/{recipe.name}" in card.training["command"]
    if any(s.holdout for s in config.scenes):
        assert card.metrics["held_out"]
