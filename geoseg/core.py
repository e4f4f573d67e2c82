r"""The bottom of geoseg: values every layer shares, importing nothing of geoseg but its errors.

The class raster's nodata value, which is also the ignore value of labels and losses; the
description of one output class; the pixel grid a raster lies on; and the one-line form of an
exception that every error message is built from. ``io/`` and every stage import these from
here, so each is written once. Nothing heavy is imported (``geoseg --help`` imports this): the
grid's CRS and transform are rasterio's and affine's types, named for the type checker only.

>>> NODATA
255
>>> first_line(ValueError("bad value\n  details nobody reads"))
'bad value'
>>> first_line(KeyError())
'KeyError'
>>> ClassInfo(3, "urban", "#c4281b").rgb
(196, 40, 27)
>>> from affine import Affine
>>> grid = Grid("EPSG:32633", Affine(10, 0, 500000, 0, -10, 4000000), width=5, height=3)
>>> grid.bounds
(500000.0, 3999970.0, 500050.0, 4000000.0)
>>> half = grid.resampled(2)
>>> (half.width, half.height, half.transform.a)
(3, 2, 20.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geoseg.errors import ModelError

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.crs import CRS

#: The class raster's nodata value; labels use it for "unlabelled" and losses ignore it.
NODATA = 255
#: Raster metadata tag holding a class raster's classes as JSON.
CLASSES_TAG = "GEOSEG_CLASSES"
#: Raster metadata tag holding a class raster's provenance as JSON.
PROVENANCE_TAG = "GEOSEG_PROVENANCE"
#: The GeoPackage layer of the land-cover polygons.
LAYER = "landcover"

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ClassInfo:
    """One output class of a model.

    Parameters
    ----------
    id : int
        The value written to the class raster (0-254; 255 is nodata).
    name : str
        Human-readable class name, e.g. ``"water"``.
    color : str
        ``#rrggbb`` color used by the raster color table and the QGIS style.
    """

    id: int
    name: str
    color: str

    def __post_init__(self) -> None:
        if not 0 <= self.id < NODATA:
            raise ModelError(f"class id {self.id} is outside 0-254 (255 is reserved for nodata)")
        if not _HEX_COLOR.match(self.color):
            raise ModelError(f"class {self.name!r} color {self.color!r} is not '#rrggbb'")

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The color as an ``(r, g, b)`` tuple of 0-255 integers."""
        return (int(self.color[1:3], 16), int(self.color[3:5], 16), int(self.color[5:7], 16))


@dataclass(frozen=True)
class Grid:
    """A pixel grid: where a raster's pixels lie on the ground.

    A scene's own grid, the grid a model runs on (the scene resampled to the model's pixel
    size), or the grid labels are brought onto; two rasters on equal grids line up pixel for
    pixel.

    Parameters
    ----------
    crs : rasterio.crs.CRS
        Coordinate reference system of ``transform``.
    transform : affine.Affine
        Pixel-to-CRS transform.
    width, height : int
        Size in pixels.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in the grid's CRS."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

    def resampled(self, factor: float) -> Grid:
        """The same extent with pixels ``factor`` times larger (``factor < 1`` upsamples).

        The size is rounded up, so the grid covers the whole extent (and at least one pixel).
        """
        from affine import Affine  # here, not at the top: importing core stays light

        return Grid(
            self.crs,
            self.transform @ Affine.scale(factor),
            max(1, math.ceil(self.width / factor)),
            max(1, math.ceil(self.height / factor)),
        )
