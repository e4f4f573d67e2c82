"""The decision's values: what the user says, what the scene says, and what is decided."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from geoseg.errors import ConfigError
from geoseg.radiometry.products import PRODUCTS


@dataclass(frozen=True)
class RadiometryRequest:
    """What the user said about the scene's values (all optional).

    Parameters
    ----------
    product : str, optional
        A key of :data:`PRODUCTS`.
    scale, offset : tuple of float, optional
        One value for every band, or one per model band.
    surface : bool, optional
        With ``scale``: whether the values are surface (True) or top-of-atmosphere (False)
        reflectance.
    source : str, optional
        Where ``scale``/``offset`` come from, when a caller passes on a decision made elsewhere
        (default: the user's ``--scale``/``--offset``).

    Raises
    ------
    ConfigError
        If the product is unknown, a product is combined with a scale or offset, or a scale is not
        positive.
    """

    product: str | None = None
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None
    source: str | None = None
    surface: bool | None = None

    def __post_init__(self) -> None:
        if self.product is not None and self.product not in PRODUCTS:
            raise ConfigError(f"unknown product {self.product!r}; known: {', '.join(PRODUCTS)}")
        if self.product is not None and (self.scale is not None or self.offset is not None):
            raise ConfigError("give either --product or --scale/--offset, not both")
        if self.scale is not None and (not self.scale or any(s <= 0 for s in self.scale)):
            raise ConfigError(f"--scale {list(self.scale)} must be one or more values > 0")
        for values, what in ((self.scale, "scale"), (self.offset, "offset")):
            if values is not None and not all(math.isfinite(v) for v in values):
                raise ConfigError(f"--{what} values must be finite numbers")


@dataclass(frozen=True)
class SceneRadiometricInfo:
    """What a scene file and its neighbours say about its values (read by the I/O layer).

    Parameters
    ----------
    name : str
        The file name (product conventions are recognised from it).
    dtype : str
        The bands' data type.
    scales, offsets : tuple of float
        GDAL's per-band scale and offset, one per band of the file (1 and 0 when undeclared).
    landsat_mtl : mapping, optional
        The Landsat metadata file beside the scene, as ``{key: value}`` with keys qualified by
        their group (``"LEVEL2_SURFACE_REFLECTANCE_PARAMETERS/REFLECTANCE_MULT_BAND_2"``) and
        also bare (first occurrence).
    landsat_mtl_name : str, optional
        That file's name, for messages.
    level : str, optional
        What the file's ``REFLECTANCE_LEVEL`` tag says: ``surface`` or ``toa``
        (``gdal_edit.py -mo REFLECTANCE_LEVEL=surface``; products read by geoseg carry it).
    acquired : str
        The acquisition date the file says (``YYYY-MM-DD``), or ``""``.
    centre : tuple of float, optional
        ``(longitude, latitude)`` of the scene's centre in degrees.
    sensor : str, optional
        ``landsat-oli`` or ``landsat-tm`` where the file says it is Landsat.
    spacecraft : str
        ``LANDSAT_5``, ``LANDSAT_7`` ... where the file says which, else ``""``.
    tags : mapping
        The file's metadata tags (Sentinel-2's ``PROCESSING_BASELINE``, ``BOA_ADD_OFFSET`` ...,
        as GDAL's SENTINEL2 driver and exporters copy them).
    band_names : tuple of str
        The common names of all the file's named bands, not only those a model reads (an 8-bit
        file with short-wave infrared is Landsat DN whichever of its bands a model takes).
    """

    name: str
    dtype: str
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    landsat_mtl: Mapping[str, str] | None = None
    landsat_mtl_name: str | None = None
    level: str | None = None
    acquired: str = ""
    centre: tuple[float, float] | None = None
    sensor: str | None = None
    spacecraft: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    band_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Radiometry:
    """How one scene's selected bands become reflectance: ``value * scale + offset``.

    Parameters
    ----------
    scale, offset : tuple of float
        One value per model band, in model order.
    source : str
        One line: where the numbers come from.
    assumed : bool
        Whether geoseg had to assume them (nothing in the data said).
    surface : bool or None
        Whether that is surface (True) or top-of-atmosphere (False) reflectance, ``None`` when
        nothing says.
    """

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    source: str
    assumed: bool = False
    surface: bool | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-able form for run reports."""
        return {
            "scale": list(self.scale),
            "offset": list(self.offset),
            "source": self.source,
            "assumed": self.assumed,
            "surface": self.surface,
        }


def _uniform(
    scale: float,
    offset: float,
    count: int,
    source: str,
    assumed: bool = False,
    surface: bool | None = None,
) -> Radiometry:
    """The same scale and offset for each of ``count`` bands."""
    return Radiometry((scale,) * count, (offset,) * count, source, assumed, surface)
