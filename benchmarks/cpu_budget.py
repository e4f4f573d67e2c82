"""CPU budget of a prediction: the CPU-seconds of each stage, measured alone, side by side.

On a CPU-only machine the model keeps every core busy (its threads compute, or spin-wait between
parallel regions), so the CPU-seconds spent elsewhere (decoding, writing the class raster and its
COG, vectorizing) can only be hidden in those spin-waits or added to the run. This measures each
stage on its own, one after the other in one process (so they do not slow each other down), and
prints ``model / (model + other stages)`` in CPU-seconds: the efficiency of a pipeline that packs
all the work on the cores and hides none of it in the model's waits. A measured efficiency above it
means that some of the other stages ran in those waits.

Usage::

    .venv/bin/geoseg predict /tmp/bench/large_10k.tif --raster /tmp/bench/classes_10k.tif \
        --out /tmp/bench/lc_10k.gpkg
    .venv/bin/python benchmarks/cpu_budget.py /tmp/bench/large_10k.tif /tmp/bench/classes_10k.tif
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children, all threads."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(step: Callable[[], object]) -> dict[str, float]:
    """Wall and CPU seconds of ``step()``."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    step()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0}


def main() -> None:
    """Print the CPU-seconds of each stage and the efficiency bound."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("classes", type=Path, help="the scene's class raster (geoseg predict)")
    parser.add_argument("--model-tiles", type=int, default=24)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import numpy as np
    import rasterio
    import torch

    from geoseg.inference import Chips, Predictor, resolve_device
    from geoseg.io.class_raster_writer import ClassRasterWriter, write_cog
    from geoseg.io.scene_reader import SceneReader
    from geoseg.pipeline import PredictOptions, prepare
    from geoseg.stitching import Patch
    from geoseg.tiling import Span
    from geoseg.vectorize import vectorize_raster

    run = prepare(args.scene, None, PredictOptions())
    predictor = Predictor(run.model, run.transform, resolve_device("cpu"), legend=run.legend)
    h, w = run.plan.chip_shape
    stages: dict[str, dict[str, float]] = {}

    chips: list[Any] = []

    def decode() -> None:
        with SceneReader(run.scene, run.bands, run.grid) as reader:
            for strip in reader.strips(run.plan):
                if not chips:  # keep a few tiles of the first strip for the model
                    starts = np.linspace(0, strip.data.shape[2] - w, args.model_tiles)
                    chips.extend(
                        Chips(strip.data[None, :, :h, c : c + w], strip.valid[None, :h, c : c + w])
                        for c in starts.astype(int)
                    )

    stages["decode (whole scene)"] = measure(decode)
    predictor.classify(chips[0])  # warm-up

    def model() -> None:
        for chip in chips:
            predictor.classify(chip)

    timed = measure(model)
    scale = len(run.plan) / len(chips)
    model_stage = {k: v * scale for k, v in timed.items()}

    with rasterio.open(args.classes) as src:
        labels = src.read(1)
    if labels.shape != (run.grid.height, run.grid.width):
        raise SystemExit(f"{args.classes} is not a class raster of {args.scene} (size differs)")
    with tempfile.TemporaryDirectory(prefix="geoseg-budget-") as tmp:
        temp_raster = Path(tmp) / "classes.tif"

        def write_classes() -> None:
            with ClassRasterWriter(temp_raster, run.grid, run.model.card.classes) as writer:
                for top in range(0, labels.shape[0], 512):
                    rows = labels[top : top + 512]
                    writer.write(Patch(Span(top, top + len(rows)), Span(0, labels.shape[1]), rows))

        stages["class raster (temporary)"] = measure(write_classes)
        stages["COG"] = measure(
            lambda: write_cog(temp_raster, Path(tmp) / "cog.tif", run.model.card.classes)
        )
        stages["vectorize + GeoPackage"] = measure(
            lambda: vectorize_raster(temp_raster, Path(tmp) / "lc.gpkg", workers=1)
        )

    other = sum(s["cpu_s"] for s in stages.values())
    cores = torch.get_num_threads()
    print(f"{args.scene}: {run.plan.height}x{run.plan.width}, {len(run.plan)} tiles")
    print(
        f"  model alone: {model_stage['wall_s']:.1f} s wall, {model_stage['cpu_s']:.1f} "
        f"CPU-s on {cores} threads (from {len(chips)} tiles)"
    )
    for name, s in stages.items():
        print(f"  {name}: {s['wall_s']:.1f} s wall, {s['cpu_s']:.1f} CPU-s")
    bound = model_stage["cpu_s"] / (model_stage["cpu_s"] + other)
    print(
        f"  other stages: {other:.1f} CPU-s = {100 * other / model_stage['cpu_s']:.1f}% of the "
        f"model's; efficiency with none of it hidden in the model's waits: {bound:.3f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"model": model_stage, "stages": stages, "efficiency_bound": bound}, indent=2
            )
        )


if __name__ == "__main__":
    main()
