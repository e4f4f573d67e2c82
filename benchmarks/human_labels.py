"""Every model on every human-labelled scene it can read: the gate before a model is shipped.

Agreement with the teacher on held-out blocks (``view_rule.py``, a run's ``metrics.json``) says
how well a student learnt Dynamic World; only human labels say whether its map is right. This
scores each model given on the human-drawn labels of ``../shared/data`` whose bands it can be fed:

- ``landsat5-amazon-rstoolbox``: Landsat 5 TM 1988 with named bands (blue ... swir22), 36
  polygons; reflectance from its MTL's radiance gains. Forest and water map cleanly; cleared
  land (-> farmland) and fallen_dry (-> other) are ambiguous (see the data's README).
- ``landsat8-parana``: Landsat 8 Level-1 blue, green, red DN without band names or MTL, four
  polygons (one per class) and six points; the band order is given as a user would give it.

Prints per-class recall and pixel accuracy. Figures against these labels are accuracy on a
sensor and place no model here trained on, not agreement with a teacher.

Usage::

    .venv/bin/python benchmarks/human_labels.py                      # the embedded students
    .venv/bin/python benchmarks/human_labels.py landcover-rgb-dw runs/rgb-long/landcover-rgb-dw.pt
    .venv/bin/python benchmarks/human_labels.py --no-resample    # the scenes' own grid as well
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from geoseg.config import PredictOptions
from geoseg.models.loading import load_model
from geoseg.training.evaluation import evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STUDENTS = ("landcover-s2-dw6", "landcover-rgbn-dw", "landcover-rgb-dw")


@dataclass(frozen=True)
class LabelledScene:
    """A scene with human labels, and what a user has to tell geoseg about it."""

    name: str
    scene: Path
    labels: Path
    label_column: str
    label_map: dict[str, str]
    #: The scene's bands in file order, where the file does not name them (given as --bands).
    unnamed_order: tuple[str, ...] | None
    #: Every band the scene holds.
    bands: tuple[str, ...]


AMAZON = SHARED / "landsat5-amazon-rstoolbox"
PARANA = SHARED / "landsat8-parana"
PARANA_MAP = {"water": "water", "crop": "farmland", "tree": "forest", "developed": "urban"}
SCENES = (
    LabelledScene(
        "Amazon polygons (Landsat 5 TM, 1988)",
        AMAZON / "LT05_1988-08-14_B1-B7.tif",
        AMAZON / "training_polygons.gpkg",
        "class",
        {"forest": "forest", "water": "water", "cleared": "farmland", "fallen_dry": "other"},
        None,
        ("blue", "green", "red", "nir", "swir16", "swir22"),
    ),
    *(
        LabelledScene(
            f"Parana {kind} (Landsat 8 L1, 2020)",
            PARANA / "LC08_224078_20200518_rgb.tif",
            PARANA / f"training_{kind}.gpkg",
            "name",
            PARANA_MAP,
            ("blue", "green", "red"),
            ("blue", "green", "red"),
        )
        for kind in ("polygons", "points")
    ),
)


def score(model: str, labelled: LabelledScene, resample: bool) -> str | None:
    """A table row: recall per class, pixel accuracy and mIoU; None where the model cannot read it.

    mIoU is over the classes labelled or predicted on the labelled pixels (the issue's second
    target on human labels, beside overall accuracy).
    """
    card = load_model(model).card
    if not set(card.bands) <= set(labelled.bands):
        return None
    bands = None
    if labelled.unnamed_order is not None:
        bands = tuple(str(labelled.unnamed_order.index(b) + 1) for b in card.bands)
    result = evaluate(
        model,
        labelled.scene,
        labelled.labels,
        label_map=labelled.label_map,
        label_column=labelled.label_column,
        options=PredictOptions(bands=bands, device="cpu", resample=resample),
    )
    metrics = result.metrics.to_dict()
    recall = ", ".join(
        f"{name} {values['recall']:.1%}"
        for name, values in metrics["per_class"].items()
        if values["recall"] is not None
    )
    grid = "model's 10 m" if resample else "scene's own"
    miou = "-" if metrics["miou"] is None else f"{metrics['miou']:.3f}"
    return (
        f"| {model} | {labelled.name}, {grid} | {recall} | {metrics['pixel_accuracy']:.3f} "
        f"| {miou} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(STUDENTS), help="names or model files")
    parser.add_argument(
        "--no-resample",
        action="store_true",
        help="also score on the scenes' own 30 m grid (--no-resample), not only resampled to 10 m",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    missing = [str(s.scene) for s in SCENES if not s.scene.exists()]
    if missing:
        raise SystemExit(f"human-labelled scenes not found (needs ../shared/data): {missing[0]}")
    print("| model | labels | recall per class | pixel accuracy | mIoU |")
    print("|---|---|---|---|---|")
    for model in args.models:
        for labelled in SCENES:
            for resample in (True, False) if args.no_resample else (True,):
                row = score(model, labelled, resample)
                if row is not None:
                    print(row, flush=True)


if __name__ == "__main__":
    main()
