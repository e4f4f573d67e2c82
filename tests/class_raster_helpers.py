"""Tiny class rasters for the vectorize, GeoPackage and report tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from geoseg.models.card import LANDCOVER_CLASSES, ClassInfo

UTM = "EPSG:32633"
# 10 m pixels at the zone's central meridian, where UTM's scale factor is 0.9996
UTM_TRANSFORM = Affine(10, 0, 500000, 0, -10, 4000000)
REPO = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    env = os.environ.get("GEOSEG_SHARED_DATA")
    return Path(env) if env else REPO / ".." / "shared" / "data"


def write_class_raster(
    path: Path,
    labels: np.ndarray,
    *,
    classes: tuple[ClassInfo, ...] | None = LANDCOVER_CLASSES,
    tag: bool = True,
    colormap: bool = True,
    crs: str | None = UTM,
    transform: Affine = UTM_TRANSFORM,
    nodata: float | None = 255,
    categories: tuple[str, ...] | None = None,
    **extra: Any,
) -> Path:
    """Write ``labels`` as a class raster following geoseg's contract (by default)."""
    data = labels if labels.ndim == 3 else labels[None]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if colormap and classes and data.dtype == np.uint8:
            dst.write_colormap(1, {c.id: (*c.rgb, 255) for c in classes})
        if tag and classes:
            dst.update_tags(GEOSEG_CLASSES=json.dumps([c.__dict__ for c in classes]))
    if categories is not None:
        items = "".join(f"<Category>{name}</Category>" for name in categories)
        Path(str(path) + ".aux.xml").write_text(
            '<PAMDataset><PAMRasterBand band="1"><CategoryNames>'
            f"{items}</CategoryNames></PAMRasterBand></PAMDataset>"
        )
    return path


def blocky_labels(seed: int, shape: tuple[int, int] = (48, 40), cell: int = 4) -> np.ndarray:
    """Random classes 0-4 in ``cell``-sized blocks with scattered nodata (255) pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, (shape[0] // cell + 1, shape[1] // cell + 1))
    labels = np.kron(coarse, np.ones((cell, cell), dtype=np.int64))[: shape[0], : shape[1]]
    labels = labels.astype(np.uint8)
    labels[rng.random(shape) < 0.04] = 255
    return labels
