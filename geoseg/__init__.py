"""geoseg: land-cover segmentation of GeoTIFF scenes, delivered as styled GeoPackages.

The library is the product; the ``geoseg`` command is a thin adapter over it. Heavy modules
(torch, rasterio) are imported lazily so ``import geoseg`` and ``geoseg --help`` stay instant.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "predict"]


def __getattr__(name: str) -> Any:
    if name == "predict":
        from geoseg.pipeline import predict

        return predict
    raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
