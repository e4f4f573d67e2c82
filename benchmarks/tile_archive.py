"""A pixel's class depends on the ground, not on the file: a scene whole vs cut into a tile archive.

Cuts a scene into ``--grid`` x ``--grid`` GeoTIFFs (as tile archives hold scenes; each keeps the
scene's metadata, as a tiler copies it), predicts the whole scene and every tile file with the same
model, and prints the share of pixels that get the same class. Pixels within ``--margin`` pixels of
a tile file's edge are left out: there a file has less context than the whole scene, whatever the
normalization (the embedded models see about 22 px around a pixel).

    .venv/bin/python benchmarks/scenes.py stack --out /tmp/bench/virginia_stack.tif
    .venv/bin/python benchmarks/tile_archive.py /tmp/bench/virginia_stack.tif
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geoseg.pipeline import PredictOptions, predict


def cut(scene: Path, folder: Path, grid: int) -> list[tuple[Path, Window]]:
    """Write the scene as ``grid`` x ``grid`` tile files (each with the scene's metadata)."""
    tiles = []
    with rasterio.open(scene) as src:
        rows = np.linspace(0, src.height, grid + 1).astype(int)
        cols = np.linspace(0, src.width, grid + 1).astype(int)
        for i in range(grid):
            for j in range(grid):
                window = Window(cols[j], rows[i], cols[j + 1] - cols[j], rows[i + 1] - rows[i])
                profile = src.profile | {
                    "width": int(window.width),
                    "height": int(window.height),
                    "transform": src.window_transform(window),
                }
                path = folder / f"tile_{i}_{j}.tif"
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(src.read(window=window))
                    dst.descriptions = src.descriptions
                    dst.scales, dst.offsets = src.scales, src.offsets
                    dst.update_tags(**src.tags())
                tiles.append((path, window))
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("--model", default=None)
    parser.add_argument("--grid", type=int, default=4)
    parser.add_argument("--margin", type=int, default=32)
    args = parser.parse_args()
    options = PredictOptions(precision="fp32")
    with tempfile.TemporaryDirectory(prefix="geoseg-archive-") as tmp:
        folder = Path(tmp)
        whole_path = folder / "whole.tif"
        predict(args.scene, None, model=args.model, raster=whole_path, options=options)
        whole = rasterio.open(whole_path).read(1)
        agree = total = 0
        worst: list[tuple[float, str]] = []
        for path, window in cut(args.scene, folder, args.grid):
            out = folder / f"{path.stem}.classes.tif"
            predict(path, None, model=args.model, raster=out, options=options)
            part = rasterio.open(out).read(1)
            r0, c0 = int(window.row_off), int(window.col_off)
            ref = whole[r0 : r0 + part.shape[0], c0 : c0 + part.shape[1]]
            m = args.margin
            inner_part, inner_ref = part[m:-m, m:-m], ref[m:-m, m:-m]
            valid = (inner_ref != 255) & (inner_part != 255)
            same = int((inner_part == inner_ref)[valid].sum())
            agree += same
            total += int(valid.sum())
            worst.append((same / max(int(valid.sum()), 1), path.name))
    print(
        f"{args.grid}x{args.grid} tile files vs the whole scene: {100 * agree / total:.3f}% of "
        f"{total} pixels more than {args.margin} px from a file edge agree"
    )
    print("least agreeing files: " + ", ".join(f"{n} {100 * a:.2f}%" for a, n in sorted(worst)[:3]))


if __name__ == "__main__":
    main()
