r"""How often a pixel of a given confidence is right: agreement with the teacher per decile.

Predicts a scene with ``--confidence`` and compares its classes with reference labels (Dynamic
World's, mapped to the five-class view by ``configs/labels_dynamic_world.yaml``) on the rows
given, by confidence decile. On s2-virginia's southern third (never trained on) that is
agreement with the teacher, not accuracy against ground truth::

    .venv/bin/python benchmarks/scenes.py stack --out /tmp/bench/virginia_stack.tif
    .venv/bin/python benchmarks/confidence_calibration.py /tmp/bench/virginia_stack.tif \
        ../shared/data/s2-virginia/dw_labels.tif --first-row 1298
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml

from geoseg.config import TTA_MODES
from geoseg.pipeline import PredictOptions, predict

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scene")
    parser.add_argument("labels", help="reference class raster on the scene's grid")
    parser.add_argument("--label-map", default=str(REPO / "configs/labels_dynamic_world.yaml"))
    parser.add_argument("--first-row", type=int, default=0, help="score rows from this one on")
    parser.add_argument("--model", default=None)
    parser.add_argument("--tta", default="none", choices=list(TTA_MODES))
    parser.add_argument("--smooth", type=int, default=0, help="majority filter window")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        result = predict(
            args.scene,
            None,
            model=args.model,
            raster=Path(tmp) / "classes.tif",
            confidence=Path(tmp) / "confidence.tif",
            options=PredictOptions(tta=args.tta, smooth=args.smooth),
        )
        with rasterio.open(Path(tmp) / "classes.tif") as src:
            classes = src.read(1)[args.first_row :]
            ids = {c["name"]: c["id"] for c in _classes(src.tags())}
        with rasterio.open(Path(tmp) / "confidence.tif") as src:
            confidence = src.read(1)[args.first_row :]
    with rasterio.open(args.labels) as src:
        reference = src.read(1)[args.first_row :]
    mapping = yaml.safe_load(Path(args.label_map).read_text())
    lookup = np.full(256, 255, np.uint8)
    for value, name in mapping.items():
        if name in ids:
            lookup[int(value)] = ids[name]
    expected = lookup[reference]
    scored = (expected != 255) & (classes != 255) & (confidence != 255)
    right = classes[scored] == expected[scored]
    values = confidence[scored].astype(np.int64)
    print(
        f"{result.model} (tta {args.tta}, smooth {args.smooth}) on {args.scene}, "
        f"rows {args.first_row}-: "
        f"{scored.sum():,} px scored, model {result.timings['model']:.1f} s"
    )
    print(f"overall agreement {right.mean():.4f}; mean confidence {values.mean():.1f}%")
    print("| confidence | share of pixels | agreement |")
    print("|---|---|---|")
    edges = np.percentile(values, np.arange(0, 101, 10))
    decile = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, 9)
    for d in range(10):
        chosen = decile == d
        if chosen.any():
            low, high = values[chosen].min(), values[chosen].max()
            share, agree = chosen.mean(), right[chosen].mean()
            print(f"| decile {d + 1}: {low}-{high}% | {share:.3f} | {agree:.3f} |")
    print("| by value | share | agreement |")
    for low, high in ((0, 50), (50, 70), (70, 90), (90, 101)):
        chosen = (values >= low) & (values < high)
        if chosen.any():
            print(f"| {low}-{min(high, 100)}% | {chosen.mean():.3f} | {right[chosen].mean():.3f} |")


def _classes(tags: dict[str, str]) -> list[dict[str, Any]]:
    import json

    from geoseg.core import CLASSES_TAG

    return list(json.loads(tags[CLASSES_TAG]))


if __name__ == "__main__":
    main()
