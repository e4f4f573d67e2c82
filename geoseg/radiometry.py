"""Turning stored pixel values into reflectance, from what the data says about itself.

Every embedded model takes reflectance (0-1, surface or top of atmosphere), so the same ground
gets the same input whichever file, crop or tile it comes from. A scene's per-band scale and
offset (``reflectance = value * scale + offset``) are decided once, before any pixel is read, in
this order:

1. what the user says: ``--product NAME`` or ``--scale``/``--offset``;
2. the scale and offset the file declares the GDAL way (``gdal_edit.py -scale -offset``);
3. a Landsat metadata file (``*_MTL.txt``) beside the scene: Collection 2 Level-2 surface
   reflectance gains; Level-1 reflectance gains corrected for the sun elevation; or, for older
   files, radiance gains with the sun elevation, the Earth-Sun distance and the band's solar
   irradiance (ESUN);
4. the conventions of products recognised by their file name: Landsat Collection 2 Level-2
   (``LC08_L2SP_...``: x 2.75e-5 - 0.2) and Level-1 (``LC08_L1TP_...``: x 2e-5 - 0.1 over the sine
   of the sun elevation, which :func:`landsat_sun_elevation` estimates from the scene's date and
   place as its MTL would state it), Sentinel-2 L1C/L2A (``S2A_MSIL2A_..._N0400_...``:
   x 1e-4, and an offset of -0.1 from processing baseline 04.00 on);
5. an assumption, said in one line and recorded: floats are reflectance, 8-bit integers
   ``DN / 255`` (the documented mapping for 8-bit imagery with no radiometric metadata, e.g.
   orthophotos) unless they hold short-wave infrared bands, which only satellites record: then
   Landsat TM/ETM+ DN, converted with their typical radiance gains, the sun elevation of the
   scene's date and place and the Earth-Sun distance (:func:`landsat_dn8`); 16- and 32-bit integers
   reflectance x 10000, unless the darkest percent of the short-wave infrared (of every band,
   for models without it) lies at 5000 or above: Landsat
   Collection 2 DN always do (their zero reflectance is 5000 in Level-1, 7273 in Level-2), while
   reflectance x 10000 puts water, shade, vegetation, snow and even cloud below 0.5 there. They are
   Level-2 surface reflectance DN if that darkest percent is 7100 or more (Level-1 puts dark
   pixels near 5000), else Level-1 DN (:func:`assume_from_sample`).

Whether reflectance is surface or top-of-atmosphere is taken from the metadata (Level-2,
``MSIL2A``, a ``surface-reflectance`` product, a ``REFLECTANCE_LEVEL`` tag); where nothing says
it, the darkest percent of the blue band decides: below 0.035 it is surface reflectance (the
atmosphere alone adds about 0.05-0.1 at the top of the atmosphere). These assumptions read a
sample of the scene's values, the only place geoseg looks at them before classifying, and decide
one scale and one offset per band for the whole scene, never anything per pixel.

Where the data says whether its values are top-of-atmosphere or surface (atmospherically
corrected) reflectance, the decision records it: the embedded models were trained on
top-of-atmosphere data, and :func:`to_model_level` gives surface reflectance a typical clear-sky
path reflectance so that such models see the look they know.

This module decides; :mod:`geoseg.io.product_metadata` reads the metadata files.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from geoseg.errors import ConfigError, InvalidSceneError


@dataclass(frozen=True)
class Product:
    """A named convention for stored values: ``reflectance = value * scale + offset``.

    ``surface`` says whether that is surface (True) or top-of-atmosphere (False) reflectance,
    ``None`` where the convention does not say.
    """

    scale: float
    offset: float
    description: str
    surface: bool | None = None


#: The products ``--product`` names.
PRODUCTS: dict[str, Product] = {
    "reflectance": Product(1.0, 0.0, "reflectance (0-1) as stored"),
    "reflectance-x10000": Product(1e-4, 0.0, "reflectance x 10000"),
    "reflectance-x1000": Product(1e-3, 0.0, "reflectance x 1000"),
    "surface-reflectance": Product(1.0, 0.0, "surface reflectance (0-1)", True),
    "surface-reflectance-x10000": Product(1e-4, 0.0, "surface reflectance x 10000", True),
    "surface-reflectance-x1000": Product(1e-3, 0.0, "surface reflectance x 1000", True),
    "sentinel2-l1c": Product(1e-4, 0.0, "Sentinel-2 L1C before baseline 04.00 (x 1e-4)", False),
    "sentinel2-l2a": Product(1e-4, 0.0, "Sentinel-2 L2A before baseline 04.00 (x 1e-4)", True),
    "sentinel2-l1c-pb04": Product(
        1e-4, -0.1, "Sentinel-2 L1C from baseline 04.00 ((value - 1000) / 10000)", False
    ),
    "sentinel2-l2a-pb04": Product(
        1e-4, -0.1, "Sentinel-2 L2A from baseline 04.00 ((value - 1000) / 10000)", True
    ),
    "landsat-c2-l2": Product(
        2.75e-5, -0.2, "Landsat Collection 2 Level-2 surface reflectance (x 2.75e-5 - 0.2)", True
    ),
    "landsat-c2-l1": Product(
        2e-5,
        -0.1,
        "Landsat Collection 2 Level-1 (x 2e-5 - 0.1, over the sine of the sun elevation)",
        False,
    ),
    "dn8": Product(1 / 255, 0.0, "8-bit values as DN / 255"),
    "naip": Product(
        math.nan, math.nan, "USDA NAIP 8-bit DN, approximate surface reflectance per band", True
    ),
}

#: NAIP DN -> approximate surface reflectance, ``(scale, offset)`` per band. NAIP is not
#: radiometrically calibrated; these lines put typical NAIP values of clear water (red 35,
#: green 50, blue 55, nir 15), green crops (70, 95, 75, 185) and bare soil (165, 150, 140, 165)
#: near Sentinel-2 surface reflectance of the same covers. DN / 255 makes vegetation's red 5x too
#: bright: on the North Dakota 2009 quarter-quad it gives 73.6% "other" where fields are, these
#: 77.2% farmland with the ponds as water.
NAIP_REFLECTANCE: dict[str, tuple[float, float]] = {
    "red": (0.0015, -0.035),
    "green": (0.0011, -0.015),
    "blue": (0.0008, -0.004),
    "nir": (0.0022, -0.02),
}

#: Reflectance per DN of 8-bit Landsat TM/ETM+ data without metadata: about their bands'
#: top-of-atmosphere gain (the Amazon TM scene's MTL gives 0.0014 in blue).
TM_DN_GAIN = 0.0015

#: Typical radiance gain and offset (W m-2 sr-1 um-1 per DN) of 8-bit Landsat bands without
#: their MTL: TM as the Amazon Landsat 5 scene's MTL states them (the Collection 2 calibration),
#: ETM+ at high gain (Chander et al. 2009), the setting of most land acquisitions.
_DN8_RADIANCE: dict[str, dict[str, tuple[float, float]]] = {
    "LANDSAT_5": {
        "blue": (0.671, -2.19),
        "green": (1.322, -4.16),
        "red": (1.044, -2.21),
        "nir": (0.876, -2.39),
        "swir16": (0.120, -0.49),
        "swir22": (0.066, -0.22),
    },
    "LANDSAT_7": {
        "blue": (0.779, -6.98),
        "green": (0.799, -7.20),
        "red": (0.622, -5.62),
        "nir": (0.640, -5.74),
        "swir16": (0.126, -1.13),
        "swir22": (0.0440, -0.39),
    },
}
#: Neither TM nor ETM+ said: between the two (geometric mean of the gains), so that either is at
#: most about 1.3x off rather than 1.7x.
_DN8_RADIANCE[""] = {
    band: (
        math.sqrt(gain * _DN8_RADIANCE["LANDSAT_7"][band][0]),
        (offset + _DN8_RADIANCE["LANDSAT_7"][band][1]) / 2,
    )
    for band, (gain, offset) in _DN8_RADIANCE["LANDSAT_5"].items()
}

#: Typical clear-sky path reflectance per band (about wavelength ** -2): what the atmosphere adds
#: to surface reflectance at the top of the atmosphere. On a Landsat 8 pair of one date (Momotombo,
#: Level-1 top-of-atmosphere vs Level-2 surface reflectance), landcover-s2-dw6's map of the
#: surface reflectance agrees with its map of the top-of-atmosphere reflectance on 91.3% of the
#: pixels with these added, on 83.9% without (values chosen while looking at that pair;
#: ``benchmarks/level_agreement.py``).
PATH_REFLECTANCE: dict[str, float] = {
    "coastal": 0.09,
    "blue": 0.07,
    "green": 0.045,
    "red": 0.03,
    "rededge1": 0.025,
    "rededge2": 0.02,
    "rededge3": 0.018,
    "nir": 0.015,
    "nir08": 0.015,
    "swir16": 0.005,
    "swir22": 0.002,
}


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


def resolve_radiometry(
    info: SceneRadiometricInfo,
    bands: Sequence[int],
    band_names: Sequence[str],
    request: RadiometryRequest | None = None,
) -> Radiometry:
    """Decide how the scene's ``bands`` (1-based, model order) become reflectance.

    Parameters
    ----------
    info : SceneRadiometricInfo
        What the scene says about itself.
    bands : sequence of int
        The scene bands feeding the model, in model order.
    band_names : sequence of str
        The model's band names (STAC common names), for Landsat band numbers.
    request : RadiometryRequest, optional
        What the user said.

    Raises
    ------
    ConfigError
        If ``--scale``/``--offset`` give neither one value nor one per model band.
    InvalidSceneError
        If a Landsat metadata file lacks a band the model needs.
    """
    request = request or RadiometryRequest()
    count = len(bands)
    if request.product == "landsat-c2-l1":
        return landsat_level1(info, count, f"--product {request.product}", assumed=True)
    if request.product == "naip":
        return naip_radiometry(band_names, "--product naip", assumed=False)
    if request.product is not None:
        product = PRODUCTS[request.product]
        return _uniform(
            product.scale,
            product.offset,
            count,
            f"--product {request.product}: {product.description}",
            surface=product.surface,
        )
    if request.scale is not None or request.offset is not None:
        scale = _per_band(request.scale or (1.0,), count, "scale")
        offset = _per_band(request.offset or (0.0,), count, "offset")
        return Radiometry(
            scale, offset, request.source or "--scale/--offset", False, request.surface
        )
    decided = _from_data(info, bands, band_names)
    if info.level in ("surface", "toa"):
        # the file's own word on its level wins over a convention's
        return dataclasses.replace(decided, surface=info.level == "surface")
    return decided


def _from_data(
    info: SceneRadiometricInfo, bands: Sequence[int], band_names: Sequence[str]
) -> Radiometry:
    count = len(bands)
    declared_scale = tuple(info.scales[b - 1] for b in bands)
    declared_offset = tuple(info.offsets[b - 1] for b in bands)
    if any(s != 1.0 for s in declared_scale) or any(o != 0.0 for o in declared_offset):
        return Radiometry(declared_scale, declared_offset, "the file's declared scale/offset")
    if info.landsat_mtl is not None:
        return landsat_radiometry(info.landsat_mtl, band_names, info.landsat_mtl_name or "MTL")
    by_name = product_from_name(info.name)
    if by_name is not None:
        key, why = by_name
        if key == "landsat-c2-l1":
            return landsat_level1(info, count, why, assumed=True)
        product = PRODUCTS[key]
        return _uniform(
            product.scale, product.offset, count, why, assumed=True, surface=product.surface
        )
    if info.sensor == "naip" and info.dtype == "uint8":
        return naip_radiometry(band_names, "a NAIP quarter-quad by its file name", assumed=True)
    swir = any(b in ("swir16", "swir22") for b in band_names)
    if info.dtype == "uint8" and swir and info.centre is not None:
        return landsat_dn8(info, band_names)
    return _from_dtype(info.dtype, count, band_names)


def landsat_dn8(info: SceneRadiometricInfo, band_names: Sequence[str]) -> Radiometry:
    """8-bit Landsat 4-7 DN without their MTL: top-of-atmosphere reflectance per band.

    ``pi * d^2 * (gain * DN + offset) / (ESUN * sin(elevation))`` with the typical gains of
    :data:`_DN8_RADIANCE` (TM unless the file says Landsat 7), the sun elevation of
    :func:`landsat_sun_elevation` and the Earth-Sun distance of the date (at an equinox where no
    date is known). On the Amazon TM scene with its MTL hidden, the human polygons' pixel
    accuracy is 0.711 with one gain for every band (DN x 0.0015), 0.790 with these (0.794 with
    the MTL's exact gains); with ETM+'s gains on that TM scene, or neither sensor said, 0.70.
    """
    spacecraft = {"LANDSAT_7": "LANDSAT_7", "LANDSAT_4": "LANDSAT_5", "LANDSAT_5": "LANDSAT_5"}.get(
        info.spacecraft, ""
    )
    longitude, latitude = info.centre or (0.0, 0.0)
    try:
        day = date.fromisoformat(info.acquired).timetuple().tm_yday
        when = info.acquired
    except ValueError:
        day, when = _EQUINOX_DAY, "an equinox (no acquisition date known)"
    elevation = landsat_sun_elevation(longitude, latitude, day, "landsat-tm")
    if elevation < 5:
        raise InvalidSceneError(
            f"{info.name}: the sun is {elevation:.0f} degrees high at {latitude:.1f} N on "
            f"{when}: give --scale/--offset (or its MTL file) for these Landsat DN"
        )
    distance = 1 - 0.01672 * math.cos(math.radians(0.9856 * (day - 4)))
    sine = math.sin(math.radians(elevation))
    gains = _DN8_RADIANCE[spacecraft]
    esun = _ESUN[spacecraft or "LANDSAT_5"]
    numbers = _TM_BANDS
    scale, offset = [], []
    for band in band_names:
        if band not in gains:
            raise InvalidSceneError(f"{info.name}: no typical Landsat gain for band {band!r}")
        factor = math.pi * distance**2 / (esun[numbers[band]] * sine)
        scale.append(gains[band][0] * factor)
        offset.append(gains[band][1] * factor)
    sensor = {"LANDSAT_7": "ETM+", "LANDSAT_5": "TM"}.get(spacecraft, "TM or ETM+ (not said)")
    return Radiometry(
        tuple(scale),
        tuple(offset),
        f"assumed 8-bit Landsat {sensor} DN (short-wave infrared in 8 bits): typical radiance "
        f"gains, sun elevation {elevation:.1f} degrees at {abs(latitude):.1f} "
        f"{'N' if latitude >= 0 else 'S'} on {when}, Earth-Sun distance and ESUN "
        "(an MTL beside the scene gives the exact gains)",
        True,
        False,
    )


def naip_radiometry(band_names: Sequence[str], why: str, assumed: bool) -> Radiometry:
    """NAIP's 8-bit DN as approximate surface reflectance (:data:`NAIP_REFLECTANCE`).

    Raises
    ------
    ConfigError
        If the model needs a band NAIP does not have.
    """
    missing = [b for b in band_names if b not in NAIP_REFLECTANCE]
    if missing:
        raise ConfigError(f"NAIP has no {', '.join(missing)} band (it has red, green, blue, nir)")
    scale = tuple(NAIP_REFLECTANCE[b][0] for b in band_names)
    offset = tuple(NAIP_REFLECTANCE[b][1] for b in band_names)
    return Radiometry(scale, offset, f"{why}: {PRODUCTS['naip'].description}", assumed, True)


def _uniform(
    scale: float,
    offset: float,
    count: int,
    source: str,
    assumed: bool = False,
    surface: bool | None = None,
) -> Radiometry:
    return Radiometry((scale,) * count, (offset,) * count, source, assumed, surface)


def to_model_level(radiometry: Radiometry, bands: Sequence[str], level: str) -> Radiometry:
    """Bring surface reflectance to a top-of-atmosphere look for a model trained on that.

    ``level`` is the model's (``"toa"`` or ``"any"``). Surface reflectance (``surface`` True)
    fed to a ``"toa"`` model gets :data:`PATH_REFLECTANCE` added per band; anything else is
    returned as it is.
    """
    if level != "toa" or radiometry.surface is not True:
        return radiometry
    offset = tuple(
        o + PATH_REFLECTANCE.get(b, 0.0) for o, b in zip(radiometry.offset, bands, strict=True)
    )
    return Radiometry(
        radiometry.scale,
        offset,
        f"{radiometry.source}; surface reflectance given a typical clear-sky path reflectance "
        "for a model trained on top-of-atmosphere data",
        radiometry.assumed,
        True,
    )


def _per_band(values: tuple[float, ...], count: int, what: str) -> tuple[float, ...]:
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ConfigError(
            f"--{what} gives {len(values)} values: give one, or one per model band ({count})"
        )
    return values


def _from_dtype(dtype: str, count: int, band_names: Sequence[str]) -> Radiometry:
    if dtype.startswith("float"):
        return _uniform(1.0, 0.0, count, "assumed reflectance (0-1): float data", True)
    if dtype == "uint8" and any(b in ("swir16", "swir22") for b in band_names):
        # 8-bit short-wave infrared is satellite DN (Landsat 4-7), never an orthophoto; without
        # a place (no info) only a typical gain is known
        return _uniform(
            TM_DN_GAIN,
            0.0,
            count,
            f"assumed 8-bit Landsat TM/ETM+ DN, reflectance = DN x {TM_DN_GAIN} (their typical "
            "top-of-atmosphere gain; an MTL beside the scene gives the exact ones)",
            True,
        )
    if dtype == "uint8":
        return _uniform(1 / 255, 0.0, count, "assumed DN / 255: 8-bit data", True)
    return _uniform(1e-4, 0.0, count, f"assumed reflectance x 10000: {dtype} data", True)


_LANDSAT_ID = re.compile(r"L[COTEM]0([4-9])_(L1TP|L1GT|L1GS|L2SP|L2SR)_", re.IGNORECASE)
_SENTINEL2_ID = re.compile(r"S2[ABCD]_MSI(L1C|L2A)_\d{8}T\d{6}_N(\d{4})_", re.IGNORECASE)


def product_from_name(name: str) -> tuple[str, str] | None:
    """The product a file name says (Landsat Collection 2, Sentinel-2), with the reason.

    >>> product_from_name("LC08_L2SP_204023_20200927_20201006_02_T1_SR.tif")[0]
    'landsat-c2-l2'
    >>> product_from_name("S2B_MSIL2A_20230705T101559_N0509_R065_T32TQM_20230705T131146.tif")[0]
    'sentinel2-l2a-pb04'
    >>> product_from_name("scene.tif") is None
    True
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    landsat = _LANDSAT_ID.search(base)
    if landsat:
        level = landsat.group(2).upper()
        if level.startswith("L2"):
            return (
                "landsat-c2-l2",
                f"Landsat Collection 2 {level} by its file name (x 2.75e-5 - 0.2)",
            )
        return (
            "landsat-c2-l1",
            f"assumed Landsat Collection 2 {level} by its file name, no MTL beside it",
        )
    sentinel = _SENTINEL2_ID.search(base)
    if sentinel:
        baseline = int(sentinel.group(2))
        level = sentinel.group(1).upper()
        key = f"sentinel2-{level.lower()}"
        if baseline >= 400:
            return (
                f"{key}-pb04",
                f"Sentinel-2 {level} processing baseline {baseline // 100:02d}.{baseline % 100:02d}"
                " by its file name ((value - 1000) / 10000)",
            )
        return key, f"Sentinel-2 {level} by its file name (value / 10000)"
    return None


# Landsat band number of each common name, by sensor family.
_OLI_BANDS = {"coastal": 1, "blue": 2, "green": 3, "red": 4, "nir": 5, "swir16": 6, "swir22": 7}
_TM_BANDS = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir16": 5, "swir22": 7}
# Solar exoatmospheric irradiance (W m-2 um-1) of TM and ETM+ bands (Chander et al. 2009).
_ESUN = {
    "LANDSAT_4": {1: 1983.0, 2: 1795.0, 3: 1539.0, 4: 1028.0, 5: 219.8, 7: 83.49},
    "LANDSAT_5": {1: 1983.0, 2: 1796.0, 3: 1536.0, 4: 1031.0, 5: 220.0, 7: 83.44},
    "LANDSAT_7": {1: 1997.0, 2: 1812.0, 3: 1533.0, 4: 1039.0, 5: 230.8, 7: 84.90},
}


def landsat_band_numbers(spacecraft: str) -> Mapping[str, int]:
    """Common name -> band number for a Landsat spacecraft id (``LANDSAT_8`` ...)."""
    return _OLI_BANDS if spacecraft in ("LANDSAT_8", "LANDSAT_9") else _TM_BANDS


def landsat_radiometry(mtl: Mapping[str, str], band_names: Sequence[str], name: str) -> Radiometry:
    """Reflectance gains of a Landsat scene from its MTL metadata.

    Level-2 files use their surface-reflectance gains. Level-1 files use the reflectance gains
    divided by the sine of the sun elevation (top-of-atmosphere reflectance), or, where the file
    has radiance gains only (older TM/ETM+ files), ``pi * L * d^2 / (ESUN * sin(elevation))``.

    Raises
    ------
    InvalidSceneError
        If the MTL lacks what the conversion needs for one of the bands.
    """
    spacecraft = mtl.get("SPACECRAFT_ID", "").strip('"')
    numbers = landsat_band_numbers(spacecraft)
    level = mtl.get("PROCESSING_LEVEL", mtl.get("DATA_TYPE", "")).strip('"').upper()
    scales, offsets = [], []
    try:
        elevation = math.radians(float(mtl["SUN_ELEVATION"]))
    except (KeyError, ValueError):
        elevation = math.nan
    for band in band_names:
        if band not in numbers:
            raise InvalidSceneError(f"{name} has no Landsat band for {band!r}")
        n = numbers[band]
        if level.startswith("L2"):
            group = "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS/"
            scale = _mtl_float(mtl, f"{group}REFLECTANCE_MULT_BAND_{n}", name)
            offset = _mtl_float(mtl, f"{group}REFLECTANCE_ADD_BAND_{n}", name)
            how = "surface reflectance gains"
        elif f"REFLECTANCE_MULT_BAND_{n}" in mtl:
            sine = _sun_sine(elevation, name)
            scale = _mtl_float(mtl, f"REFLECTANCE_MULT_BAND_{n}", name) / sine
            offset = _mtl_float(mtl, f"REFLECTANCE_ADD_BAND_{n}", name) / sine
            how = "top-of-atmosphere reflectance gains and sun elevation"
        else:
            sine = _sun_sine(elevation, name)
            esun = _ESUN.get(spacecraft, {}).get(n)
            if esun is None:
                raise InvalidSceneError(
                    f"{name}: no solar irradiance known for {spacecraft} band {n}"
                )
            distance = _earth_sun_distance(mtl)
            factor = math.pi * distance**2 / (esun * sine)
            scale = _mtl_float(mtl, f"RADIANCE_MULT_BAND_{n}", name) * factor
            offset = _mtl_float(mtl, f"RADIANCE_ADD_BAND_{n}", name) * factor
            how = "radiance gains, sun elevation, Earth-Sun distance and ESUN (TOA reflectance)"
        scales.append(scale)
        offsets.append(offset)
    return Radiometry(
        tuple(scales), tuple(offsets), f"{name}: {how}", surface=level.startswith("L2")
    )


def _mtl_float(mtl: Mapping[str, str], key: str, name: str) -> float:
    try:
        return float(mtl[key])
    except (KeyError, ValueError):
        raise InvalidSceneError(f"{name} has no usable {key.rsplit('/', 1)[-1]}") from None


def _sun_sine(elevation: float, name: str) -> float:
    if not math.isfinite(elevation) or elevation <= 0:
        raise InvalidSceneError(f"{name} has no usable SUN_ELEVATION")
    return math.sin(elevation)


def _earth_sun_distance(mtl: Mapping[str, str]) -> float:
    """Astronomical units: the MTL's value, else from the acquisition day of the year."""
    if "EARTH_SUN_DISTANCE" in mtl:
        return float(mtl["EARTH_SUN_DISTANCE"])
    acquired = date.fromisoformat(mtl.get("DATE_ACQUIRED", "2000-01-01").strip('"'))
    day = acquired.timetuple().tm_yday
    return 1 - 0.01672 * math.cos(math.radians(0.9856 * (day - 4)))


#: Local mean solar time (hours) of the descending equator crossing: Landsat 8/9 at 10:11;
#: Landsat 4-7 drifted around 9:30-10:15 over their missions (9:45 taken).
_LANDSAT_NODE_HOURS = {"landsat-oli": 10.18, "landsat-tm": 9.75}
#: Landsat's orbit inclination (degrees): sun-synchronous, retrograde.
_LANDSAT_INCLINATION = 98.2
#: Day of the year taken when a file says no date: an equinox, whose sun is the year's mean.
_EQUINOX_DAY = 80


def landsat_sun_elevation(
    longitude: float, latitude: float, day_of_year: int, sensor: str | None = None
) -> float:
    """Sun elevation (degrees) at a place when Landsat images it on a given day of the year.

    Landsat passes every place at about the same local solar time: its descending equator
    crossing time, later north of the equator and earlier south of it (the track runs
    south-south-west). With the sun's declination and the equation of time for the day
    (Spencer 1971), that gives the elevation the MTL would state: within 0.6 degrees of all 13
    MTL files in this project's data (Landsat 5, 8 and 9, 20 degrees S to 53 degrees N).

    >>> round(landsat_sun_elevation(-50.1, -4.3, 227, "landsat-tm"), 1)  # MTL: 49.8
    50.1
    """
    node = _LANDSAT_NODE_HOURS.get(sensor or "", _LANDSAT_NODE_HOURS["landsat-oli"])
    ratio = math.tan(math.radians(latitude)) / math.tan(math.radians(180 - _LANDSAT_INCLINATION))
    local_hours = node + math.degrees(math.asin(max(-1.0, min(1.0, ratio)))) / 15
    g = 2 * math.pi / 365 * (day_of_year - 1)
    declination = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    equation_of_time_min = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    hour_angle = math.radians(15 * (local_hours + equation_of_time_min / 60 - 12))
    phi = math.radians(latitude)
    sine = math.sin(phi) * math.sin(declination) + math.cos(phi) * math.cos(declination) * math.cos(
        hour_angle
    )
    return math.degrees(math.asin(sine))


def landsat_level1(
    info: SceneRadiometricInfo | None, count: int, why: str, assumed: bool
) -> Radiometry:
    """Landsat Collection 2 Level-1 DN without their MTL: top-of-atmosphere reflectance.

    ``(DN x 2e-5 - 0.1) / sin(sun elevation)``, the elevation estimated from the scene's date
    and centre by :func:`landsat_sun_elevation` (at an equinox where no date is known). Without
    the division, reflectance is too low by 1 / sin(elevation), 1.1-2x, and land looks like
    water (Parana, May: pixel accuracy on its polygons 0.37 without, 0.84 with).
    """
    product = PRODUCTS["landsat-c2-l1"]
    if info is None or info.centre is None:
        return _uniform(
            product.scale,
            product.offset,
            count,
            f"{why}: x 2e-5 - 0.1, no place known for the sun elevation",
            assumed,
            product.surface,
        )
    longitude, latitude = info.centre
    try:
        day = date.fromisoformat(info.acquired).timetuple().tm_yday
        when = info.acquired
    except ValueError:
        day, when = _EQUINOX_DAY, "an equinox (no acquisition date known)"
    elevation = landsat_sun_elevation(longitude, latitude, day, info.sensor)
    if elevation < 5:
        raise InvalidSceneError(
            f"{info.name}: the sun is {elevation:.0f} degrees high at {latitude:.1f} N on "
            f"{when}: give --scale/--offset (or its MTL file) for Landsat Level-1 DN"
        )
    sine = math.sin(math.radians(elevation))
    return _uniform(
        product.scale / sine,
        product.offset / sine,
        count,
        f"{why}: (x 2e-5 - 0.1) / sin({elevation:.1f} degrees), the sun elevation Landsat "
        f"sees at {abs(latitude):.1f} {'N' if latitude >= 0 else 'S'} "
        f"{abs(longitude):.1f} {'E' if longitude >= 0 else 'W'} on {when}",
        assumed,
        product.surface,
    )


#: Darkest percent of the short-wave infrared at or above which 16-bit values are Landsat
#: Collection 2 DN, not reflectance x 10000.
LANDSAT_DN_FLOOR = 5000.0
#: Darkest percent of the short-wave infrared at or above which Landsat DN are Level-2.
LANDSAT_L2_FLOOR = 7100.0
#: Darkest percent of Level-1 DN in blue above which no Level-2 (surface) file goes: the
#: atmosphere's blue light keeps top-of-atmosphere blue high over the darkest ground.
LANDSAT_L1_BLUE_FLOOR = 8600.0
#: Darkest percent of blue minus red (DN) above which DN are top of atmosphere: the sky's blue.
LANDSAT_L1_BLUE_EXCESS = 300.0


def _top_of_atmosphere_dn(darkest: Any, band_names: Sequence[str], swir_floor: float) -> bool:
    """Whether Landsat Collection 2 DN are Level-1 (top of atmosphere) rather than Level-2.

    Over the darkest ground, top-of-atmosphere blue is bright with the sky's scattered light and
    brighter than red; surface reflectance has that light taken away. On the 10 Landsat 8/9 files
    of ../shared/data cut into 850 tiles of 1/1 to 1/64 of a file, "darkest percent of blue above
    8600, or above red by more than 300" tells every tile's level; the short-wave infrared's
    darkest percent alone (>= 7100: Level-2) got 139 wrong, so tile files of one scene were
    read as different products. Without blue and red the short-wave infrared decides.
    """
    names = list(band_names)
    if "blue" in names and "red" in names:
        blue, red = float(darkest[names.index("blue")]), float(darkest[names.index("red")])
        return blue > LANDSAT_L1_BLUE_FLOOR or blue - red > LANDSAT_L1_BLUE_EXCESS
    return swir_floor < LANDSAT_L2_FLOOR


#: Darkest percent of blue reflectance below which it is surface reflectance.
SURFACE_BLUE_CEILING = 0.035


def assume_from_sample(
    radiometry: Radiometry,
    sample: Any,
    valid: Any,
    band_names: Sequence[str],
    info: SceneRadiometricInfo | None = None,
) -> Radiometry:
    """Refine what had to be assumed, from a sample of the scene's stored values.

    Only assumptions change: a scale the data type suggested may become Landsat Collection 2
    DN, and an unknown level becomes surface or top-of-atmosphere reflectance (see the module
    docstring). Declared and user-given scales are kept as they are.

    Parameters
    ----------
    radiometry : Radiometry
        The decision from metadata.
    sample : np.ndarray
        ``(bands, ...)`` stored values of the model's bands (model order).
    valid : np.ndarray
        Which sample pixels are valid.
    band_names : sequence of str
        The model's bands.
    info : SceneRadiometricInfo, optional
        What the scene says (its date and place give Level-1 DN their sun elevation).
    """
    import numpy as np

    values = np.asarray(sample)[:, np.asarray(valid)].astype(np.float64)
    if values.shape[1] < 100:
        return radiometry
    darkest = np.percentile(values, 1, axis=1)
    decided = radiometry
    swir = [i for i, b in enumerate(band_names) if b in ("swir16", "swir22")]
    floor = float(darkest[swir].min()) if swir else float(darkest.min())
    if radiometry.assumed and radiometry.scale[0] == 1e-4 and floor >= LANDSAT_DN_FLOOR:
        key = (
            "landsat-c2-l1"
            if _top_of_atmosphere_dn(darkest, band_names, floor)
            else "landsat-c2-l2"
        )
        product = PRODUCTS[key]
        where = "the short-wave infrared's" if swir else "every band's"
        name = product.description.split(" (")[0] if key == "landsat-c2-l1" else product.description
        level = (
            "Level-1: the darkest blue holds the sky's light"
            if key == "landsat-c2-l1"
            else ("Level-2: the darkest blue does not hold the sky's light")
        )
        why = (
            f"assumed {name} from the values ({where} darkest percent is "
            f"{floor:.0f}, which reflectance x 10000 never is; {level})"
        )
        if key == "landsat-c2-l1":
            decided = landsat_level1(info, len(band_names), why, assumed=True)
        else:
            decided = _uniform(
                product.scale, product.offset, len(band_names), why, True, product.surface
            )
    if decided.surface is None and "blue" in band_names:
        i = list(band_names).index("blue")
        blue = float(darkest[i]) * decided.scale[i] + decided.offset[i]
        surface = blue < SURFACE_BLUE_CEILING
        level = "surface" if surface else "top-of-atmosphere"
        decided = dataclasses.replace(
            decided,
            surface=surface,
            source=f"{decided.source}; assumed {level} reflectance (the darkest percent of blue "
            f"is {blue:.3f})",
            assumed=True,
        )
    return decided
