"""geoseg: land-cover segmentation of GeoTIFF scenes, delivered as styled GeoPackages.

The library is the product; the ``geoseg`` command is a thin adapter over it. Heavy modules
(torch, rasterio) are imported on first use so ``import geoseg`` and ``geoseg --help`` stay instant.

Modules are layered, lowest first; a module imports only from its own layer or the ones above it in
this list, and no two modules import each other (``tests/test_layers.py`` reads the imports and
holds the code to it; a module is in the layer of the longest name listed that contains it):

1. foundation: geoseg, geoseg.errors, geoseg.core
2. values: geoseg.config, geoseg.tiling, geoseg.stitching, geoseg.radiometry, geoseg.bands,
   geoseg.models, geoseg.models.card, geoseg.models.catalogue, geoseg.styles, geoseg.review,
   geoseg.memory, geoseg.provenance, geoseg.smoothing, geoseg.workers
3. io: geoseg.io
4. models: geoseg.models.dynamic_world, geoseg.models.architectures, geoseg.models.loading,
   geoseg.normalization, geoseg.snow_check
5. stages: geoseg.inference, geoseg.streaming, geoseg.vectorize, geoseg.report
6. pipeline: geoseg.prepare_run, geoseg.classify_stage, geoseg.pipeline
7. applications: geoseg.batch, geoseg.training
8. interface: geoseg.cli, geoseg.cli_options

Where this differs from ``../shared/DESIGN.md`` on purpose: ``vectorize``, ``batch`` and
``radiometry`` are packages with one concern per file, not single modules, and the CLI's shared
prediction options have a module of their own (``cli_options``); ``core`` is added at the bottom
for the values every layer shares; and the pure computations (tiling, stitching, radiometry, the
model card's values) sit below ``io``, because the class-raster writer stitches tiles as it writes
and the scene reader plans its windows with the tiling, so ``io`` depends on them and never the
other way round.

The pipeline layer is three modules, each importing only those before it: ``prepare_run`` decides
everything before the first tile is read, ``classify_stage`` streams the tiles through the model,
and ``pipeline`` orders the stages and delivers the outputs.

>>> import geoseg
>>> sorted(geoseg.__all__)
['PredictOptions', '__version__', 'batch', 'evaluate', 'predict', 'train', 'vectorize_raster']
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.2.0"

# OpenMP threads that finish a parallel region spin only briefly for the next one, then sleep:
# libgomp's default spin (300,000 turns) takes a core from GDAL's decoding, the class-raster
# writer and the vectorize workers, while sleeping at once (OMP_WAIT_POLICY=PASSIVE) slows a
# heavy network's own passes. Alternated runs on 2 cores, default / passive / 10,000 turns:
# near-free model, 100 Mpx: 25.2, 24.6 / 20.9, 19.1 / 20.3, 19.3 s; U-Net-ResNet34 bf16, 16 Mpx:
# 26.6, 25.6 / 27.1, 26.1 / 26.5, 25.6 s; Dynamic World network, 16 Mpx: 48.1, 45.9 / 39.6,
# 45.5 / 41.2, 43.7 s. libgomp reads it once, when torch loads it: it counts where geoseg is
# imported before torch, as by the geoseg command; a user's own OpenMP settings win.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# public name -> module that defines it, or (module, name there) when the two names differ
_LAZY: dict[str, str | tuple[str, str]] = {
    "predict": "geoseg.pipeline",
    "PredictOptions": "geoseg.config",
    "vectorize_raster": "geoseg.vectorize",
    # only until ``geoseg.batch`` the package is imported, which binds that name to it: code in
    # the package calls ``geoseg.batch.run_batch``
    "batch": ("geoseg.batch", "run_batch"),
    "train": "geoseg.training",
    "evaluate": "geoseg.training",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        target = _LAZY[name]
        module, attribute = target if isinstance(target, tuple) else (target, name)
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'geoseg' has no attribute {name!r}")
