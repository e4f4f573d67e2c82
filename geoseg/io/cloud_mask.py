"""Cloud masks that come with a scene: which pixels are not ground, read as nodata.

Three kinds are known, each a band of the scene (described by its name) or, for Landsat, a file
beside it:

- ``QA_PIXEL`` (Landsat Collection 2): bits for fill, dilated cloud, cirrus, cloud and cloud shadow.
- ``SCL`` (Sentinel-2 L2A scene classification): no data, defective, cloud shadow, medium and
  high probability cloud, thin cirrus. Dark areas, unclassified pixels and snow stay: they are
  ground the model classifies.
- ``QA60`` (Sentinel-2 Level-1C, as Earth Engine exports it): bits for opaque cloud and cirrus.

A cloud is not land cover: classified, it comes out as snow, urban or water where there is none.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geoseg.io.gdal import open_raster
from geoseg.io.product_metadata import find_landsat_qa

log = logging.getLogger(__name__)

#: QA_PIXEL bits read as nodata: fill (0), dilated cloud (1), cirrus (2), cloud (3), shadow (4).
QA_MASKED_BITS = 0b11111
#: Scene classification (L2A ``SCL``) classes masked as nodata: no data, saturated or defective,
#: cloud shadow, cloud medium and high probability, thin cirrus.
MASKED_SCL = (0, 1, 3, 8, 9, 10)
#: QA60 bits read as nodata: opaque cloud (10), cirrus (11).
QA60_MASKED_BITS = (1 << 10) | (1 << 11)
#: What each kind flags, for the one line a run prints.
FLAGGED = {
    "QA_PIXEL": "fill, cloud, cirrus and cloud shadow",
    "SCL": "no data, defective, cloud shadow, cloud and cirrus",
    "QA60": "opaque cloud and cirrus",
}


@dataclass(frozen=True)
class CloudMask:
    """A cloud mask band: ``kind`` (a key of :data:`FLAGGED`) in band ``band`` of ``path``."""

    path: str
    band: int
    kind: str

    def describe(self) -> str:
        """``"SCL: band 7 of S2_stack.tif"``, for messages and the run report."""
        return f"{self.kind}: band {self.band} of {Path(self.path).name}"


def clear_pixels(kind: str, values: np.ndarray) -> np.ndarray:
    """Where a cloud mask of ``kind`` says clear ground or water.

    >>> clear_pixels("QA_PIXEL", np.array([21824, 22280, 23888, 1])).tolist()
    [True, False, False, False]
    >>> clear_pixels("SCL", np.array([4, 5, 6, 2, 11, 3, 8, 9, 10, 0])).tolist()
    [True, True, True, True, True, False, False, False, False, False]
    >>> clear_pixels("QA60", np.array([0, 1024, 2048])).tolist()
    [True, False, False]
    """
    if kind == "SCL":
        return ~np.isin(values, MASKED_SCL)
    bits = QA_MASKED_BITS if kind == "QA_PIXEL" else QA60_MASKED_BITS
    result: np.ndarray = (values.astype(np.int64) & bits) == 0
    return result


def find_cloud_mask(src: Any, name: str) -> CloudMask | None:
    """The cloud mask of the scene open as ``src`` (path ``name``): a band of it, or a file beside.

    A band counts when its description is the kind's name (``QA_PIXEL``, ``SCL``, ``QA60``); a
    Landsat ``*_QA_PIXEL.TIF`` beside the scene counts when it is on the scene's grid.
    """
    for index, description in enumerate(src.descriptions, start=1):
        kind = (description or "").strip().upper()
        if kind in FLAGGED:
            return CloudMask(name, index, kind)
    qa = find_landsat_qa(name)
    if qa is None:
        return None
    try:
        with open_raster(str(qa)) as qa_src:
            same = (qa_src.crs, qa_src.transform, qa_src.shape) == (
                src.crs,
                src.transform,
                src.shape,
            )
    except RasterioError:
        same = False
    if not same:
        log.warning("%s is not on the grid of %s: its cloud mask is not used", qa.name, name)
        return None
    return CloudMask(str(qa), 1, "QA_PIXEL")


class CloudSource:
    """Reads a cloud mask band (if there is one) as a clear-pixel mask, window by window.

    ``dataset`` may be the mask's file itself or a warped view of it on another grid (nearest
    neighbour, so flags stay flags). Without a mask every pixel is clear.
    """

    def __init__(self, dataset: Any = None, mask: CloudMask | None = None) -> None:
        self.dataset = dataset if mask is not None else None
        self.mask = mask

    def clear(self, window: Window | None) -> np.ndarray | bool:
        """Clear pixels of ``window`` (the whole dataset for ``None``); ``True`` without a mask."""
        if self.dataset is None or self.mask is None:
            return True
        return clear_pixels(self.mask.kind, self.dataset.read(self.mask.band, window=window))


@contextlib.contextmanager
def cloud_source(mask: CloudMask | None) -> Iterator[CloudSource]:
    """``mask``'s file opened for :class:`CloudSource` reads (all clear for ``None``)."""
    if mask is None:
        yield CloudSource()
        return
    with open_raster(mask.path) as src:
        yield CloudSource(src, mask)
