"""Opening rasters through GDAL the way every geoseg reader does."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning


@contextlib.contextmanager
def open_raster(name: str) -> Iterator[Any]:
    """Open a raster for reading without rasterio's not-georeferenced warning.

    Preflight reports a missing georeference as a proper error; the warning would only repeat it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(name) as src:
            yield src
