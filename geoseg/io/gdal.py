"""Opening rasters through GDAL the way every geoseg reader does."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.vrt import WarpedVRT

from geoseg.core import Grid


@contextlib.contextmanager
def open_raster(name: str) -> Iterator[Any]:
    """Open a raster for reading without rasterio's not-georeferenced warning.

    Preflight reports a missing georeference as a proper error; the warning would only repeat it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(name) as src:
            yield src


def warped_to_grid(
    src: Any, grid: Grid, resampling: Resampling, nodata: float | None = None
) -> WarpedVRT:
    """A virtual view of ``src`` on another grid, warped on the fly.

    Labels, resampled scenes and class rasters all line up with a target grid this way, without a
    temporary file. Use as a context manager.
    """
    options: dict[str, Any] = {"nodata": nodata} if nodata is not None else {}
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling,
        **options,
    )
