"""Batch benchmark: scenes per minute for a local batch, in-process and on local Dask clusters.

Every measured run starts from an empty output folder, so nothing is resumed; the time covers
the whole ``run_batch`` call (listing and hashing the input, starting and stopping the cluster,
every scene's GeoPackage with its run report, the batch report). A second, resumed run shows what
re-running a finished batch costs.

When the embedded default model ``landcover-s2-dw6`` is not installed, a stand-in with the same
card (U-Net, ResNet-18 encoder, 512 px tiles, 10 m) and random weights is used: it costs the same
compute; its classes mean nothing. The output says which model ran.

Usage::

    .venv/bin/python benchmarks/batch_bench.py                        # 21 Tanzania dates
    .venv/bin/python benchmarks/batch_bench.py ../shared/data/landsat-xlandsat --workers 0 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "s2-tanzania-series"
DEFAULT_MODEL = "landcover-s2-dw6"


def stand_in_model(folder: Path) -> Path:
    """A random-weight model with the default model's card (architecture, tiles, GSD)."""
    import torch

    from geoseg.models.architectures import build_network
    from geoseg.models.card import LANDCOVER_CLASSES, ModelCard
    from geoseg.models.loading import save_model_file

    card = ModelCard(
        name="landcover-s2-unet-standin",
        architecture="unet",
        bands=("blue", "green", "red", "nir", "swir16", "swir22"),
        classes=LANDCOVER_CLASSES,
        arch_params={
            "encoder_name": "resnet18",
            "encoder_depth": 5,
            "decoder_channels": [128, 64, 32, 16, 16],
        },
        gsd=10.0,
        tile_size=512,
        overlap=64,
        description="benchmark stand-in: random weights, default model's card",
    )
    torch.manual_seed(0)
    network = build_network(card.architecture, len(card.bands), card.num_classes, card.arch_params)
    path = folder / "landcover-s2-unet-standin.pt"
    save_model_file(path, card, network.state_dict())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=str(DEFAULT_INPUT))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default=None, help="model name or file (default: see above)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from geoseg.batch import run_batch
    from geoseg.models.loading import embedded_model_paths
    from geoseg.pipeline import PredictOptions

    with tempfile.TemporaryDirectory(prefix="geoseg-batch-bench-") as tmp:
        model: str | Path
        if args.model:
            model = args.model
        elif DEFAULT_MODEL in embedded_model_paths():
            model = DEFAULT_MODEL
        else:
            model = stand_in_model(Path(tmp))
        options = PredictOptions(device="cpu")
        rows: list[dict[str, Any]] = []
        for workers in args.workers:
            out = Path(tmp) / f"out-{workers}"
            start = time.perf_counter()
            report = run_batch(args.input, out, model=model, options=options, workers=workers)
            wall = time.perf_counter() - start
            resumed_start = time.perf_counter()
            resumed = run_batch(args.input, out, model=model, options=options, workers=workers)
            resumed_s = time.perf_counter() - resumed_start
            per_scene = [s.seconds for s in report.scenes if s.status == "done"]
            row = {
                "input": args.input,
                "model": str(model),
                "workers": workers,
                "executor": report.executor,
                "scenes": len(report.scenes),
                "done": report.count("done"),
                "failed": report.count("failed"),
                "wall_s": round(wall, 2),
                "scenes_per_minute": round(60 * len(report.scenes) / wall, 1),
                "median_scene_s": round(sorted(per_scene)[len(per_scene) // 2], 2)
                if per_scene
                else None,
                "resumed_wall_s": round(resumed_s, 2),
                "resumed_cached": resumed.count("cached"),
                "cpu_count": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
