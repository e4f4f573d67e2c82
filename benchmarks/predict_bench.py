"""Prediction benchmark: end-to-end throughput, stage times, peak RSS, and the model-only ceiling.

Each scene is measured in a fresh Python process, so its peak RSS is its own. Prints a summary and
writes JSON (``--json``) so runs can be compared.

Usage::

    .venv/bin/python benchmarks/scenes.py large --height 10000 --width 10000 --out /tmp/large.tif
    .venv/bin/python benchmarks/predict_bench.py /tmp/large.tif --ceiling-tiles 8
    # memory flat in scene height: two scenes of one width, the second twice as high
    .venv/bin/python benchmarks/predict_bench.py /tmp/a.tif /tmp/a_double_height.tif
    # a shared machine is noisy: measure each scene 3 times and print the medians
    .venv/bin/python benchmarks/predict_bench.py /tmp/large.tif --ceiling-tiles 24 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import geoseg  # noqa: F401  first, so OpenMP spin count (geoseg/__init__.py) is set before torch


class TreeRss:
    """Peak summed RSS of this process and its children (the vectorize workers), sampled.

    ``RUSAGE_CHILDREN`` cannot tell it: a spawned worker is forked before it execs, so its
    peak counts the parent's pages for an instant. Shared pages are counted once per process,
    so the sum errs high.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _tree(pid: int) -> list[int]:
        pids = [pid]
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                pids += TreeRss._tree(int(child))
        return pids

    @staticmethod
    def _rss_mb(pid: int) -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:  # the process ended between listing and reading
            pass
        return 0.0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                total = sum(self._rss_mb(p) for p in self._tree(os.getpid()))
            except OSError:
                continue
            self.peak_mb = max(self.peak_mb, total)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(scene: str, out_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one prediction in this process and return its figures."""
    import numpy as np
    import torch

    from geoseg.inference import Chips, Predictor, resolve_device
    from geoseg.io.scene_reader import SceneReader
    from geoseg.pipeline import PredictOptions, predict, prepare

    model = None if args.model == "default" else args.model
    options = PredictOptions(
        device=args.device, batch_size=args.batch_size, precision=args.precision
    )

    def time_ceiling() -> float:
        """Seconds for the model alone on ``--ceiling-tiles`` real tiles already in memory."""
        run = prepare(scene, model, options)
        predictor = Predictor(
            run.model,
            run.transform,
            resolve_device(args.device),
            precision=options.precision,
            legend=run.legend,
        )
        h, w = run.plan.chip_shape
        with SceneReader(run.scene, run.bands, run.grid) as reader:
            strip = next(reader.strips(run.plan))
        # the first strip may be shorter than a chip (chips sit on the CRS's pixel grid):
        # pad it, as the pipeline pads chips; the model's time does not depend on the values
        short = (max(h - strip.data.shape[1], 0), max(w - strip.data.shape[2], 0))
        data = np.pad(strip.data, ((0, 0), (0, short[0]), (0, short[1])))
        valid = np.pad(strip.valid, ((0, short[0]), (0, short[1])))
        starts = np.linspace(0, max(data.shape[2] - w, 0), args.ceiling_tiles).astype(int)
        chips = [Chips(data[None, :, :h, c : c + w], valid[None, :h, c : c + w]) for c in starts]
        chips = [c for c in chips if c.data.shape[2:] == (h, w)]
        size = args.batch_size or predictor.auto_batch_size((h, w))
        batches = [
            Chips(
                np.concatenate([c.data for c in chips[i : i + size]]),
                np.concatenate([c.valid for c in chips[i : i + size]]),
            )
            for i in range(0, len(chips), size)
        ]
        predictor.classify(batches[0])  # warm-up
        t0 = time.perf_counter()
        for batch in batches:
            predictor.classify(batch)
        return float((time.perf_counter() - t0) / len(chips) * args.ceiling_tiles)

    def time_bare() -> float:
        """Seconds for ``--ceiling-tiles`` bare forward passes, as a user's own loop runs them.

        The network as it is stored (NCHW, PyTorch's default), random reflectance-like tiles
        made before each pass, ``torch.autocast`` where the run is bfloat16, batch 1: what
        ``../shared/tools/peerbench``'s ``model_only.py`` times, to which issue 16 compares.
        """
        from geoseg.inference import uses_bf16

        run = prepare(scene, model, options)
        device = resolve_device(args.device)
        network = run.model.network.to(device).eval()
        size = (run.plan.tile_size, run.plan.tile_size)  # the tiles a user's loop would cut
        bf16 = uses_bf16(options.precision, device)
        generator = torch.Generator().manual_seed(1)
        seconds = 0.0
        with torch.inference_mode():
            for i in range(args.ceiling_tiles + 1):
                x = torch.rand(1, len(run.bands), *size, generator=generator).mul_(0.3).to(device)
                t0 = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    network(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds += (time.perf_counter() - t0) if i else 0.0  # the first warms up
        return seconds

    # the machine is shared and its speed drifts: time the model alone before and after the run
    before_s = time_ceiling() if args.ceiling_tiles else 0.0
    bare_before_s = time_bare() if args.ceiling_tiles else 0.0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = Path(out_dir)
    cuda = resolve_device(args.device).type == "cuda"
    if cuda:  # the run's own peak, not the ceiling's
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with TreeRss() as tree:
        result = predict(
            scene,
            None if args.no_vectorize else out / "lc.gpkg",
            model=model,
            raster=out / "lc.tif",
            options=options,
            overwrite=True,
        )
    wall = time.perf_counter() - t0
    record: dict[str, Any] = {
        "scene": scene,
        "model": result.model,
        "device": str(resolve_device(args.device)),
        "tiles": result.tiles,
        "wall_s": wall,
        "timings": result.timings,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_tree_mb": tree.peak_mb,
        "rss_before_run_mb": before / 1024,
        "polygons": result.polygons,
        "torch_threads": torch.get_num_threads(),
    }
    if cuda:
        record["gpu"] = torch.cuda.get_device_name()
        record["peak_gpu_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        record["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    if args.ceiling_tiles:
        record["ceiling"] = {"tiles": args.ceiling_tiles, "seconds": [before_s, time_ceiling()]}
        record["bare"] = {"tiles": args.ceiling_tiles, "seconds": [bare_before_s, time_bare()]}
    return record


def run_child(scene: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one scene in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-") as out:
        command = [sys.executable, __file__, "--child", out, str(scene), *args.passthrough]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    record: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    import rasterio

    with rasterio.open(scene) as src:
        record["megapixels"] = src.width * src.height / 1e6
        record["shape"] = [src.height, src.width, src.count]
    record["megapixels_per_s"] = record["megapixels"] / record["wall_s"]
    if "ceiling" in record:
        # the model alone on every tile of the plan, extrapolated from the timed tiles, with the
        # mean of the timings before and after the run
        ceiling = record["ceiling"]
        per_tile = [seconds / ceiling["tiles"] for seconds in ceiling["seconds"]]
        ceiling["megapixels_per_s_before_after"] = [
            record["megapixels"] / (t * record["tiles"]) for t in per_tile
        ]
        model_only_s = sum(per_tile) / len(per_tile) * record["tiles"]
        record["model_only_s"] = model_only_s
        record["ceiling_megapixels_per_s"] = record["megapixels"] / model_only_s
        record["pipeline_efficiency"] = model_only_s / record["wall_s"]
        bare = record["bare"]
        bare_s = sum(bare["seconds"]) / len(bare["seconds"]) / bare["tiles"] * record["tiles"]
        record["bare_forward_s"] = bare_s
        record["overhead_over_bare"] = record["wall_s"] / bare_s
    return record


def report(records: list[dict[str, Any]]) -> None:
    """Print the figures of each run."""
    for r in records:
        h, w, b = r["shape"]
        print(
            f"{r['scene']}: {h}x{w}x{b} ({r['megapixels']:.1f} Mpx), {r['model']} on {r['device']}"
        )
        print(
            f"  end-to-end {r['megapixels_per_s']:.3f} Mpx/s in {r['wall_s']:.1f} s; peak RSS "
            f"{r['peak_rss_mb']:.0f} MiB ({r['rss_before_run_mb']:.0f} MiB before the run), "
            f"with the vectorize workers (summed, sampled) {r.get('peak_rss_tree_mb', 0):.0f} MiB"
        )
        if "peak_gpu_allocated_mb" in r:
            print(
                f"  {r['gpu']}: peak GPU memory {r['peak_gpu_allocated_mb']:.0f} MiB allocated, "
                f"{r['peak_gpu_reserved_mb']:.0f} MiB reserved by PyTorch"
            )
        print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["timings"].items()))
        if "ceiling" in r:
            before, after = r["ceiling"]["megapixels_per_s_before_after"]
            print(
                f"  model alone (ceiling): {r['ceiling_megapixels_per_s']:.3f} Mpx/s (timed on "
                f"{r['ceiling']['tiles']} in-memory tiles before the run: {before:.3f}, after: "
                f"{after:.3f}); pipeline efficiency {r['pipeline_efficiency']:.3f}"
            )
            seconds = r["bare"]["seconds"]
            print(
                f"  bare forward passes (NCHW, batch 1, random tiles): {r['bare_forward_s']:.1f} s "
                f"for {r['tiles']} tiles (timed before: {seconds[0]:.2f} s, after: "
                f"{seconds[1]:.2f} s for {r['bare']['tiles']}); end to end / bare "
                f"{r['overhead_over_bare']:.3f}x"
            )
    by_scene: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_scene.setdefault(r["scene"], []).append(r)
    medians = {scene: _medians(runs) for scene, runs in by_scene.items()}
    for scene, m in medians.items():
        if len(by_scene[scene]) > 1:
            print(
                f"{scene}: median of {len(by_scene[scene])} runs: end-to-end "
                f"{m['megapixels_per_s']:.3f} Mpx/s, "
                f"efficiency {m.get('pipeline_efficiency', 0):.3f}, "
                f"peak RSS {m['peak_rss_mb']:.0f} MiB"
            )
    if len(medians) == 2:
        a, b = medians.values()
        print(
            f"peak RSS ratio {b['peak_rss_mb'] / a['peak_rss_mb']:.3f} for "
            f"{b['megapixels'] / a['megapixels']:.2f}x the pixels"
        )


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("megapixels", "megapixels_per_s", "pipeline_efficiency", "peak_rss_mb")
    return {k: statistics.median(r[k] for r in runs) for k in keys if all(k in r for r in runs)}


def _without_repeat(argv: list[str]) -> list[str]:
    """The arguments a child gets: all but ``--repeat N``."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--repeat":
            skip = True
        elif not a.startswith("--repeat="):
            out.append(a)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("scenes", nargs="+")
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the library's")
    parser.add_argument("--no-vectorize", action="store_true")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--ceiling-tiles", type=int, default=0, help="time the model alone too")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scene (medians printed)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(args.scenes[0], args.child, args)))
        return
    args.passthrough = _without_repeat([a for a in sys.argv[1:] if a not in args.scenes])
    records = [run_child(Path(s), args) for s in args.scenes for _ in range(args.repeat)]
    report(records)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
