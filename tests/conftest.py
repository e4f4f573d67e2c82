"""Shared fixtures: tiny generated rasters, fake models, and the shared real data (when present)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from geoseg.models.architectures import build_network
from geoseg.models.card import LANDCOVER_CLASSES, ModelCard
from geoseg.models.loading import save_model_file

S2_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")
REPO = Path(__file__).resolve().parents[1]
UTM_TRANSFORM = Affine(10, 0, 400000, 0, -10, 4000000)
DEMO_SCENE = REPO / "data" / "demo" / "virginia_s2_crop.tif"


def shared_data_dir() -> Path | None:
    """The shared real data, from GEOSEG_SHARED_DATA or ../shared/data beside the checkout."""
    env = os.environ.get("GEOSEG_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data not available: ../shared/data is absent (set GEOSEG_SHARED_DATA)")
    return path


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = "EPSG:32618",
    transform: Affine | None = UTM_TRANSFORM,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    tiled: bool = True,
    block: int = 16,
    **extra: Any,
) -> Path:
    """Write a (bands, H, W) array as a GeoTIFF.

    Bands are described as the fake models' bands (blue, green, red ...) unless ``descriptions``
    says otherwise (``()`` for none).
    """
    bands, height, width = data.shape
    if descriptions is None and bands <= len(S2_BANDS):
        descriptions = S2_BANDS[:bands]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": data.dtype.name,
        "nodata": nodata,
        **extra,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if tiled and width >= block and height >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, name)
    return path


def make_card(bands: tuple[str, ...] = S2_BANDS, **changes: Any) -> ModelCard:
    fields: dict[str, Any] = {
        "name": "fake-convnet",
        "architecture": "convnet",
        "bands": bands,
        "classes": LANDCOVER_CLASSES,
        "arch_params": {"layers": 2, "width": 8},
        "gsd": None,
        "tile_size": 64,
        "overlap": 8,
    }
    fields.update(changes)
    return ModelCard(**fields)


def save_fake_model(path: Path, card: ModelCard | None = None, seed: int = 0) -> Path:
    """A convnet with seeded random weights: a fake model for behaviour tests, never shipped."""
    card = card or make_card()
    torch.manual_seed(seed)
    network = build_network(card.architecture, len(card.bands), card.num_classes, card.arch_params)
    save_model_file(path, card, network.state_dict())
    return path


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    return save_fake_model(tmp_path / "fake.pt")


@pytest.fixture
def scene_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(10_000))

    def make(height: int = 40, width: int = 50, bands: int = 6, seed: int = 0, **kw: Any) -> Path:
        rng = np.random.default_rng(seed)
        data = rng.integers(100, 3000, size=(bands, height, width), dtype=np.uint16)
        return write_raster(tmp_path / f"scene{next(counter)}.tif", data, **kw)

    return make
