"""geoseg: land-cover segmentation of GeoTIFF scenes, delivered as styled GeoPackages.

The library is the product; the ``geoseg`` command is a thin adapter over it. Heavy modules
(torch, rasterio) are imported on first use so ``import geoseg`` and ``geoseg --help`` stay instant.

>>> import geoseg
>>> sorted(geoseg.__all__)
['PredictOptions', '__version__', 'batch', 'evaluate', 'predict', 'train', 'vectorize_raster']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> module that defines it
_LAZY = {
    "predict": "geoseg.pipeline",
    "PredictOptions": "geoseg.pipeline",
    "vectorize_raster": "geoseg.vectorize",
    "batch": "geoseg.batch",
    "train": "geoseg.training",
    "evaluate": "geoseg.training",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
