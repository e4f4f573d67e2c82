"""Mixed precision against float32: the share of pixels whose class agrees, and the time of each.

Runs ``geoseg.predict`` (class raster only) on one scene twice, ``--precision fp32`` and
``--precision bf16``, on the device given, and compares the two class rasters pixel by pixel.

Usage::

    .venv/bin/python benchmarks/scenes.py stack --out /tmp/virginia_stack.tif
    .venv/bin/python benchmarks/precision_agreement.py /tmp/virginia_stack.tif --json out.json
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
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    classes: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="geoseg-precision-") as tmp:
        for precision in ("fp32", "bf16"):
            out = Path(tmp) / f"{precision}.tif"
            options = PredictOptions(device=args.device, precision=precision)
            t0 = time.perf_counter()
            predict(args.scene, None, model=args.model, raster=out, options=options)
            seconds[precision] = time.perf_counter() - t0
            with rasterio.open(out) as src:
                classes[precision] = src.read(1)
    valid = classes["fp32"] != 255
    agree = float((classes["fp32"][valid] == classes["bf16"][valid]).mean())
    record = {
        "scene": args.scene,
        "device": str(resolve_device(args.device)),
        "valid_pixels": int(valid.sum()),
        "agreement": agree,
        "seconds": seconds,
    }
    print(
        f"{args.scene} on {record['device']}: bf16 agrees with fp32 on {agree:.4%} of "
        f"{record['valid_pixels']} valid pixels (fp32 {seconds['fp32']:.1f} s, "
        f"bf16 {seconds['bf16']:.1f} s)"
    )
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
