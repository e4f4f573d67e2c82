r"""The bottom of geoseg: values every layer shares, importing nothing of geoseg but its errors.

The class raster's nodata value, which is also the ignore value of labels and losses; the
description of one output class; and the one-line form of an exception that every error message
is built from. ``io/`` and every stage import these from here, so each is written once.

>>> NODATA
255
>>> first_line(ValueError("bad value\n  details nobody reads"))
'bad value'
>>> first_line(KeyError())
'KeyError'
>>> ClassInfo(3, "urban", "#c4281b").rgb
(196, 40, 27)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geoseg.errors import ModelError

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
