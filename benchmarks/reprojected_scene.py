"""Dynamic World on a 10 m scene that was reprojected (resampled bilinearly at 10 m).

Dynamic World was trained on crisp 10 m pixels, and seen through 11 m pixels (``view_rule.py
--coarsen 1.1``) it agrees with its own labels far less. A user's 10 m scene is often reprojected
to another CRS first, which resamples it at the same pixel size. This reprojects the s2-virginia
nine-band stack from UTM 18N to UTM 17N at 10 m (bilinear), predicts it with ``landcover-s2-dw``
and ``landcover-s2-dw6``, and scores both, away from the edges, against Dynamic World's map of the
original grid carried to the new one by nearest neighbour: how much of Dynamic World's map
survives the resampling (agreement with a published model's own map, not accuracy).

Usage (needs ../shared/data; writes into ``--work``)::

    .venv/bin/python benchmarks/scenes.py stack --nine --out /tmp/virginia_nine.tif
    .venv/bin/python benchmarks/reprojected_scene.py /tmp/virginia_nine.tif
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from geoseg.pipeline import PredictOptions, predict

MODELS = ("landcover-s2-dw", "landcover-s2-dw6")
CLASSES = 5
MARGIN = 20


def reprojected(stack: Path, out: Path, crs: str) -> Path:
    """``stack`` resampled bilinearly onto ``crs`` at 10 m (nodata 0; descriptions, scales kept)."""
    with rasterio.open(stack) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds, resolution=10
        )
        profile = src.profile | {
            "crs": crs,
            "transform": transform,
            "width": width,
            "height": height,
            "nodata": 0,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        with rasterio.open(out, "w", **profile) as dst:
            for band in range(1, src.count + 1):
                values = np.zeros((height, width), src.dtypes[0])
                reproject(
                    rasterio.band(src, band),
                    values,
                    dst_transform=transform,
                    dst_crs=crs,
                    resampling=Resampling.bilinear,
                    src_nodata=0,
                    dst_nodata=0,
                )
                dst.write(values, band)
            dst.descriptions = src.descriptions
            dst.scales, dst.offsets = src.scales, src.offsets
    return out


def scores(reference: np.ndarray, predicted: np.ndarray) -> tuple[float, float, list[float]]:
    """Pixel agreement, mIoU and per-class IoU where both are valid, away from the edges."""
    inner = np.zeros(reference.shape, bool)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = True
    valid = (reference != 255) & (predicted != 255) & inner
    ref, pred = reference[valid], predicted[valid]
    ious = [
        float(((ref == k) & (pred == k)).sum() / ((ref == k) | (pred == k)).sum())
        for k in range(CLASSES)
        if (ref == k).any()
    ]
    return float((ref == pred).mean()), float(np.mean(ious)), ious


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path, help="nine-band stack (benchmarks/scenes.py --nine)")
    parser.add_argument("--crs", default="EPSG:32617")
    parser.add_argument("--work", type=Path, default=Path("/tmp/reprojected_scene"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    moved = reprojected(args.stack, args.work / "reprojected.tif", args.crs)
    options = PredictOptions(device="cpu")
    maps: dict[tuple[str, str], Path] = {}
    for model in MODELS:
        for grid, scene in (("original", args.stack), ("reprojected", moved)):
            maps[model, grid] = args.work / f"{model}_{grid}.tif"
            predict(
                scene, None, model=model, raster=maps[model, grid], options=options, overwrite=True
            )
    with rasterio.open(maps[MODELS[0], "original"]) as original, rasterio.open(moved) as target:
        reference = np.full((target.height, target.width), 255, np.uint8)
        reproject(
            original.read(1),
            reference,
            src_transform=original.transform,
            src_crs=original.crs,
            dst_transform=target.transform,
            dst_crs=target.crs,
            resampling=Resampling.nearest,
            src_nodata=255,
            dst_nodata=255,
        )
    for model in MODELS:
        with rasterio.open(maps[model, "reprojected"]) as src:
            agreement, miou, ious = scores(reference, src.read(1))
        print(
            f"{model} on the reprojected scene against Dynamic World on the original grid: "
            f"pixel agreement {agreement:.4f}, mIoU {miou:.3f} (per class "
            + ", ".join(f"{v:.3f}" for v in ious)
            + ")"
        )
    with (
        rasterio.open(maps[MODELS[0], "original"]) as a,
        rasterio.open(maps[MODELS[1], "original"]) as b,
    ):
        agreement, miou, _ = scores(a.read(1), b.read(1))
    print(
        f"{MODELS[1]} against {MODELS[0]}, both on the original grid: pixel agreement "
        f"{agreement:.4f}, mIoU {miou:.3f}"
    )


if __name__ == "__main__":
    main()
