"""The review-and-retrain loop on a real scene with human polygons, measured.

1. ``geoseg predict`` maps the Amazon Landsat 5 scene with the embedded six-band model.
2. An "analyst" reviews half of the hand-drawn polygons (every other one of each class): the
   predicted polygons are cut to them, given the class the analyst says, and ticked
   ``reviewed``; the rest of the map stays unreviewed. That is what correcting ``class_name``
   and ticking ``reviewed`` in QGIS gives.
3. ``geoseg train`` fine-tunes the model on the reviewed polygons only (``label_filter:
   reviewed``).
4. Both models are scored on the other half of the polygons (never reviewed) and compared pixel
   by pixel on the whole scene: how much the correction changed where it should, and elsewhere.

The labels are human (RStoolbox's polygons, see ../shared/data/landsat5-amazon-rstoolbox)::

    .venv/bin/python benchmarks/review_loop.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.features import rasterize

from geoseg.pipeline import PredictOptions, predict
from geoseg.training import evaluate, train
from geoseg.training.config import train_config_from_dict

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "landsat5-amazon-rstoolbox"
SCENE = DATA / "LT05_1988-08-14_B1-B7.tif"
POLYGONS = DATA / "training_polygons.gpkg"
#: The human classes as geoseg's five-class view, and as the network's own classes to train.
VIEW = {"forest": "forest", "water": "water", "cleared": "farmland", "fallen_dry": "other"}
OWN = {"forest": "trees", "water": "water", "farmland": "grass", "other": "flooded_vegetation"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--model", default="landcover-s2-dw6")
    parser.add_argument("--keep", type=Path, default=None, help="keep the maps in this folder")
    args = parser.parse_args()
    if not SCENE.exists():
        raise SystemExit(f"needs {SCENE} (../shared/data beside the repository)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        options = PredictOptions(min_area_m2=0, simplify_m=0)
        predict(
            SCENE,
            work / "map.gpkg",
            model=args.model,
            raster=work / "before.tif",
            options=options,
            overwrite=True,
        )
        human = gpd.read_file(POLYGONS)
        human["view"] = human["class"].map(VIEW)
        order = human.groupby("class").cumcount()
        reviewed, held_out = human[order % 2 == 0], human[order % 2 == 1]
        held_out.to_file(work / "held_out.gpkg")
        edited = _review(work / "map.gpkg", reviewed)
        edited.to_file(work / "reviewed.gpkg", layer="landcover")
        print(
            f"reviewed {len(edited[edited.reviewed])} polygon pieces from "
            f"{len(reviewed)} human polygons; {len(held_out)} held out"
        )
        recipe = {
            "output": str(work / "run"),
            "model": {"name": "amazon-reviewed", "init_from": args.model},
            "scenes": [
                {
                    "name": "amazon",
                    "image": str(SCENE),
                    "labels": str(work / "reviewed.gpkg"),
                    "label_column": "class_name",
                    "label_filter": "reviewed",
                    "label_map": OWN,
                }
            ],
            "loss": {"name": "ce"},
            "augment": {
                "band_gain": 0.03,
                "focus_probability": 0.9,
                "focus_classes": list(OWN.values()),
            },
            "optim": {
                "steps": args.steps,
                "batch_size": 8,
                "patch_size": 128,
                "lr": 0.0003,
                "warmup_steps": 5,
                "freeze_batch_norm": True,
                "log_every": 20,
                "checkpoint_every": 1000,
            },
        }
        tuned = train(train_config_from_dict(recipe)).model_path
        predict(
            SCENE, None, model=tuned, raster=work / "after.tif", options=options, overwrite=True
        )
        rows = []
        for name, model in (("before", args.model), ("after", tuned)):
            scores = evaluate(
                model, SCENE, work / "held_out.gpkg", label_map=VIEW, label_column="class"
            ).metrics
            recall = dict(zip(scores.class_names, scores.recall, strict=True))
            recall = {c: recall[c] for c in ("forest", "water", "farmland", "other")}
            rows.append({"model": name, **recall, "pixel accuracy": scores.pixel_accuracy})
        print("held-out human polygons (recall per class):")
        print(pd.DataFrame(rows).round(3).to_string(index=False))
        _changes(work / "before.tif", work / "after.tif", human)


def _review(gpkg: Path, reviewed: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The map as an analyst leaves it: predicted polygons cut to the reviewed areas, corrected."""
    predicted = gpd.read_file(gpkg, layer="landcover")
    pieces = gpd.overlay(predicted, reviewed[["view", "geometry"]], how="intersection")
    pieces["class_name"] = pieces["view"]
    pieces["reviewed"] = True
    rest = gpd.overlay(predicted, reviewed[["geometry"]], how="difference")
    rest["reviewed"] = False
    columns = ["class_name", "reviewed", "geometry"]
    return gpd.GeoDataFrame(pd.concat([pieces[columns], rest[columns]]), crs=predicted.crs)


def _changes(before: Path, after: Path, human: gpd.GeoDataFrame) -> None:
    with rasterio.open(before) as a, rasterio.open(after) as b:
        first, second = a.read(1), b.read(1)
        names = {int(str(c["id"])): c["name"] for c in _classes(a)}
        labelled = rasterize(
            ((g, 1) for g in human.geometry), out_shape=a.shape, transform=a.transform, fill=0
        ).astype(bool)
    valid = (first != 255) & (second != 255)
    changed = valid & (first != second)
    print(
        f"pixels that changed class: {changed[labelled].mean():.3f} inside the human "
        f"polygons, {changed[~labelled & valid].mean():.3f} elsewhere"
    )
    for value in np.unique(first[valid]):
        share_before = (first[valid] == value).mean()
        share_after = (second[valid] == value).mean()
        print(
            f"  {names.get(int(value), value)}: {share_before:.3f} -> {share_after:.3f} "
            "of the scene"
        )


def _classes(src: rasterio.DatasetReader) -> list[dict[str, object]]:
    import json

    from geoseg.core import CLASSES_TAG

    return list(json.loads(src.tags()[CLASSES_TAG]))


if __name__ == "__main__":
    main()
