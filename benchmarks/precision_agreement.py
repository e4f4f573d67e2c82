"""Mixed precision and devices against float32: the share of pixels whose class agrees, and times.

Runs ``geoseg.predict`` (class raster only) on one scene once per ``--runs`` entry
(``device:precision``, or ``device:precision:compile`` to ``torch.compile`` the network) and
compares each class raster with the first, pixel by pixel. By default ``--precision fp32`` and
``bf16`` on ``--device``; ``--runs cpu:fp32,cuda:fp32,cuda:bf16`` is the CPU/CUDA agreement on a
real scene, ``--runs cpu:bf16,cpu:bf16:compile`` what compiling changes.

Usage::

    .venv/bin/python benchmarks/scenes.py stack --out /tmp/virginia_stack.tif
    .venv/bin/python benchmarks/precision_agreement.py /tmp/virginia_stack.tif --json out.json
    .venv/bin/python benchmarks/precision_agreement.py /tmp/vs.tif --runs cpu:fp32,cuda:bf16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from geoseg.inference import resolve_device
from geoseg.pipeline import PredictOptions, predict


def main() -> None:
    """Measure and print the agreement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene")
    parser.add_argument("--model", default=None, help="default: the embedded default model")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--runs", default=None, help="device:precision,... (first = reference); default fp32,bf16"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs = (args.runs or f"{args.device}:fp32,{args.device}:bf16").split(",")
    classes: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    devices: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="geoseg-precision-") as tmp:
        for run in runs:
            device, precision, *flags = run.split(":")
            out = Path(tmp) / f"{run.replace(':', '_')}.tif"
            options = PredictOptions(device=device, precision=precision, compile="compile" in flags)
            t0 = time.perf_counter()
            predict(args.scene, None, model=args.model, raster=out, options=options)
            seconds[run] = time.perf_counter() - t0
            devices[run] = str(resolve_device(device))
            with rasterio.open(out) as src:
                classes[run] = src.read(1)
    reference = classes[runs[0]]
    valid = reference != 255
    agreement = {run: float((reference[valid] == classes[run][valid]).mean()) for run in runs[1:]}
    record = {
        "scene": args.scene,
        "reference": runs[0],
        "devices": devices,
        "valid_pixels": int(valid.sum()),
        "agreement": agreement,
        "seconds": seconds,
    }
    for run, agree in agreement.items():
        print(
            f"{args.scene}: {run} ({devices[run]}) agrees with {runs[0]} ({devices[runs[0]]}) "
            f"on {agree:.4%} of {record['valid_pixels']} valid pixels "
            f"({seconds[runs[0]]:.1f} s vs {seconds[run]:.1f} s)"
        )
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
