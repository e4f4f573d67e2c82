"""Surface vs top-of-atmosphere reflectance of one date: how far the map depends on the level.

Predicts the Landsat 8 Level-1 (top of atmosphere, from its MTL) and Level-2 (surface reflectance,
from its MTL) files of one date with the six-band model, the Level-2 file with the typical path
reflectance geoseg adds for models trained on top-of-atmosphere data and without it, and prints
the share of pixels whose class agrees with the Level-1 map::

    .venv/bin/python benchmarks/level_agreement.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from geoseg.pipeline import PredictOptions, predict
from geoseg.radiometry import RadiometryRequest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "landsat-xlandsat"
PAIR = "LC08_{}_017051_20151205_20200908_02_T1_B2-B7_{}.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="landcover-s2-dw6")
    args = parser.parse_args()
    toa, surface = DATA / PAIR.format("L1TP", "DN"), DATA / PAIR.format("L2SP", "SR")
    if not toa.exists():
        raise SystemExit(f"needs {toa} (../shared/data beside the repository)")
    as_toa = RadiometryRequest(scale=(2.75e-5,), offset=(-0.2,), surface=False, source="no path")
    with tempfile.TemporaryDirectory() as tmp:
        maps: dict[str, np.ndarray] = {}
        runs = {
            "level-1": (toa, PredictOptions()),
            "level-2 with the path": (surface, PredictOptions()),
            "level-2 as it is": (surface, PredictOptions(radiometry=as_toa)),
        }
        grid = None
        for name, (scene, options) in runs.items():
            out = Path(tmp) / f"{len(maps)}.tif"
            predict(scene, None, model=args.model, raster=out, options=options)
            with rasterio.open(out) as src:
                if grid is None:  # the level-1 map's grid: the others are read onto it
                    grid = (src.crs, src.transform, src.shape)
                classes = np.full(grid[2], 255, np.uint8)
                reproject(
                    rasterio.band(src, 1),
                    classes,
                    dst_crs=grid[0],
                    dst_transform=grid[1],
                    dst_nodata=255,
                    resampling=Resampling.nearest,
                )
                maps[name] = classes
    reference = maps.pop("level-1")
    for name, classes in maps.items():
        valid = (reference != 255) & (classes != 255)
        agree = float((classes == reference)[valid].mean())
        print(f"{name}: agrees with the level-1 map on {100 * agree:.1f}% of {valid.sum()} px")


if __name__ == "__main__":
    main()
