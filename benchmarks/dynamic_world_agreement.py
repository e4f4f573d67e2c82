"""landcover-s2-dw against the TensorFlow original: labels and probabilities on s2-virginia.

``../shared/data/s2-virginia/dw_labels.tif`` and ``dw_probabilities.tif`` are the Dynamic World
TensorFlow network's output on that scene (``dynamic-world-model/make_labels.py``: the whole
scene at once, reflect-padded to a multiple of 32). Two figures:

- the port: geoseg's network on the same input, fed the same way (whole scene, reflect padding),
  against the original's labels and probabilities: how faithful the conversion is;
- geoseg predict as users run it (tiles, the absolute downsampling grid, --precision auto):
  the map a user gets. Its downsampling grid is aligned to the CRS's pixel grid so that tile
  archives agree with whole scenes; on s2-virginia, whose first column is odd on that grid, that
  grid is one pixel off the file-relative one the original used.

    .venv/bin/python benchmarks/scenes.py stack --nine --out /tmp/bench/virginia9.tif
    .venv/bin/python benchmarks/dynamic_world_agreement.py /tmp/bench/virginia9.tif
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch

from geoseg.models.architectures import for_inference
from geoseg.models.loading import load_model
from geoseg.normalization import InputTransform
from geoseg.pipeline import PredictOptions, predict
from geoseg.radiometry import Radiometry

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path, help="the nine-band s2-virginia stack")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    with rasterio.open(SHARED / "s2-virginia" / "dw_labels.tif") as src:
        labels = src.read(1)
    with rasterio.open(SHARED / "s2-virginia" / "dw_probabilities.tif") as src:
        reference = src.read().astype(np.float32) / 255

    model = load_model("landcover-s2-dw")
    with rasterio.open(args.stack) as src:
        raw = src.read().astype(np.float32)
        scale = src.scales
    transform = InputTransform(
        Radiometry(tuple(scale), (0.0,) * 9, "the stack"), model.card.normalization
    )
    x = transform.apply(raw)
    height, width = x.shape[1:]
    padded = np.pad(x, ((0, 0), (0, -height % 32), (0, -width % 32)), mode="reflect")
    with torch.inference_mode():
        logits = for_inference(model.network)(torch.from_numpy(padded)[None])[0]
    probabilities = torch.softmax(logits, 0)[:, :height, :width].numpy()
    port = probabilities.argmax(0)
    difference = np.abs(probabilities - reference)
    print(
        f"port, fed as the original: {100 * (port == labels).mean():.3f}% of {labels.size} pixels "
        f"agree; probabilities differ by {difference.mean():.4f} on average, "
        f"{difference.max():.4f} at most (the reference is stored as uint8 / 255)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "classes.tif"
        options = PredictOptions(legend="full", precision=args.precision)
        predict(args.stack, None, model=model, raster=out, options=options)
        with rasterio.open(out) as src:
            mapped = src.read(1)
    print(
        f"geoseg predict (tiled, absolute grid, precision {args.precision}): "
        f"{100 * (mapped == labels).mean():.3f}% agree"
    )


if __name__ == "__main__":
    main()
