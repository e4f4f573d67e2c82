r"""Vectorize benchmark: one class raster, vectorized with different numbers of worker processes.

A dense map of any size is made by mirror-tiling a smaller class raster (e.g. the default model's
map of the s2-virginia stack, from ``geoseg predict STACK --raster classes.tif``).

Usage::

    .venv/bin/python benchmarks/scenes.py stack --out /tmp/virginia_stack.tif
    .venv/bin/geoseg predict /tmp/virginia_stack.tif --raster /tmp/virginia_classes.tif \
        --out /tmp/virginia.gpkg
    .venv/bin/python benchmarks/vectorize_bench.py /tmp/virginia_classes.tif --mirror-to 10000 \
        --workers 1 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.vectorize import vectorize_raster


def mirror(src_path: Path, out: Path, size: int) -> None:
    """Write a ``size`` x ``size`` map of mirrored copies of ``src_path``, in row strips."""
    with rasterio.open(src_path) as src:
        labels = src.read(1)
        profile = src.profile.copy()
        colormap, tags = src.colormap(1), src.tags()
    h, w = labels.shape
    rows = np.concatenate([np.arange(h), np.arange(h)[::-1]])
    cols = np.concatenate([np.arange(w), np.arange(w)[::-1]])[np.arange(size) % (2 * w)]
    profile.update(height=size, width=size, tiled=True, blockxsize=512, blockysize=512)
    profile.update(compress="deflate", driver="GTiff")
    with rasterio.open(out, "w", **profile) as dst:
        dst.write_colormap(1, colormap)
        dst.update_tags(**tags)
        for start in range(0, size, 1024):
            index = rows[np.arange(start, min(start + 1024, size)) % (2 * h)]
            dst.write(labels[index][:, cols][None], window=Window(0, start, size, len(index)))


def main() -> None:
    """Print the time of each run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classes", type=Path)
    parser.add_argument("--mirror-to", type=int, default=0, help="side of a mirrored map")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="geoseg-vec-") as tmp:
        raster = args.classes
        if args.mirror_to:
            raster = Path(tmp) / "mirrored.tif"
            mirror(args.classes, raster, args.mirror_to)
        with rasterio.open(raster) as src:
            megapixels = src.width * src.height / 1e6
        for workers in args.workers:
            t0 = time.perf_counter()
            result = vectorize_raster(
                raster, Path(tmp) / f"out{workers}.gpkg", overwrite=True, workers=workers
            )
            seconds = time.perf_counter() - t0
            steps = ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items())
            print(
                f"{megapixels:.0f} Mpx, workers={workers}: {seconds:.1f} s, "
                f"{megapixels / seconds:.1f} Mpx/s, {result.polygon_count} polygons ({steps})"
            )


if __name__ == "__main__":
    main()
