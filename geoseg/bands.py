"""Matching a scene's bands to the bands a model needs.

Models name their bands with STAC ``eo:common_name`` values (the three Sentinel-2 red-edge bands
B05-B07 are ``rededge1``-``rededge3``, so they cannot be confused). Scenes name theirs in band
descriptions (common names, sensor band ids such as Sentinel-2's ``B04``, or both, as in
``red_B4``) or, for photographs, in GDAL's color interpretation (red, green, blue). A bare band id
is read in the sensor's own numbering: ``B5`` is nir on Landsat 8/9, rededge1 on Sentinel-2.

A scene whose bands are not named is refused, not guessed: the same three bands in another order
turn water into land without any error (a Landsat B2, B3, B4 stack is blue, green, red, not red,
green, blue).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geoseg.errors import BandMappingError

_SENTINEL2_IDS = {
    "B1": "coastal",
    "B2": "blue",
    "B3": "green",
    "B4": "red",
    "B5": "rededge1",
    "B6": "rededge2",
    "B7": "rededge3",
    "B8": "nir",
    "B8A": "nir08",
    "B9": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
}
_LANDSAT_OLI_IDS = {
    "B1": "coastal",
    "B2": "blue",
    "B3": "green",
    "B4": "red",
    "B5": "nir",
    "B6": "swir16",
    "B7": "swir22",
    "B8": "pan",
    "B9": "cirrus",
}
_LANDSAT_TM_IDS = {
    "B1": "blue",
    "B2": "green",
    "B3": "red",
    "B4": "nir",
    "B5": "swir16",
    "B7": "swir22",
    "B8": "pan",
}
#: NAIP's fixed band order (USDA FSA): its files carry no band descriptions.
NAIP_ORDER: tuple[str | None, ...] = ("red", "green", "blue", "nir")
_SENSOR_IDS: dict[str, dict[str, str]] = {
    "sentinel2": _SENTINEL2_IDS,
    "landsat-oli": _LANDSAT_OLI_IDS,
    "landsat-tm": _LANDSAT_TM_IDS,
    # Landsat, but not which: OLI's band 2 is blue, TM/ETM+'s green, so no id can be read
    "landsat": {},
}
#: What to say where band ids could not be read for not knowing which Landsat it is.
_WHICH_LANDSAT = (
    ": Landsat band ids name other bands on Landsat 8/9 and on Landsat 4-7 (SR_B2 is blue on one, "
    "green on the other), and nothing says which this is: name the file as the product is "
    "(LC08_..., LT05_...) or pass --bands"
)
COMMON_NAMES = frozenset(
    {
        "coastal",
        "blue",
        "green",
        "red",
        "rededge1",
        "rededge2",
        "rededge3",
        "nir",
        "nir08",
        "nir09",
        "cirrus",
        "swir16",
        "swir22",
        "pan",
    }
)
_ALIASES = {
    "swir1": "swir16",
    "swir2": "swir22",
    "swir1.6": "swir16",
    "swir2.2": "swir22",
    "shortwaveinfrared1": "swir16",
    "shortwaveinfrared2": "swir22",
    "nearinfrared": "nir",
    "nirnarrow": "nir08",
    "narrownir": "nir08",
    "rededge071": "rededge1",
    "rededge075": "rededge2",
    "rededge078": "rededge3",
    "re1": "rededge1",
    "re2": "rededge2",
    "re3": "rededge3",
}
#: Centre wavelength ranges (nm) of the common names, for descriptions such as ``SWIR (1610 nm)``.
_WAVELENGTHS_NM = (
    (400.0, 450.0, "coastal"),
    (450.0, 530.0, "blue"),
    (530.0, 600.0, "green"),
    (620.0, 690.0, "red"),
    (690.0, 720.0, "rededge1"),
    (720.0, 760.0, "rededge2"),
    (760.0, 800.0, "rededge3"),
    (800.0, 900.0, "nir"),
    (900.0, 960.0, "nir09"),
    (1340.0, 1400.0, "cirrus"),
    (1500.0, 1800.0, "swir16"),
    (2000.0, 2400.0, "swir22"),
)
_WAVELENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(nm|um|µm|μm)(?![a-z])")


def normalize_band_name(description: str, sensor: str | None = None) -> str:
    """Map a band description to a STAC common name where one is recognised.

    A common name in the description wins, read over runs of up to three words so that
    ``"Red Edge 1"`` is rededge1 and ``"Band 5 Near Infrared"`` nir (a ``red`` inside ``red edge``
    never counts as red); then a centre wavelength (``"SWIR (1610 nm)"``); then a band id read in
    ``sensor``'s numbering (``sentinel2`` by default, ``landsat-oli``, ``landsat-tm``).

    >>> normalize_band_name("B04"), normalize_band_name("Red"), normalize_band_name("SWIR1")
    ('red', 'red', 'swir16')
    >>> normalize_band_name("swir1_B6"), normalize_band_name("B5")
    ('swir16', 'rededge1')
    >>> normalize_band_name("B5", "landsat-oli")
    'nir'
    >>> normalize_band_name("B05 - Vegetation red edge 1"), normalize_band_name("SWIR (1610 nm)")
    ('rededge1', 'swir16')
    """
    text = description.strip().lower()
    tokens = [t for t in re.split(r"[\s_:/(),;\-]+", text) if t] if text else []
    if "rededge" in "".join(tokens):
        # "red edge" without a number is not red: only a band id or a wavelength can say which
        tokens_for_words = [t for t in tokens if t not in ("red", "edge")]
        phrases = [*_phrases(tokens, 3), *_phrases(tokens, 2), *tokens_for_words]
    else:
        phrases = [*_phrases(tokens, 3), *_phrases(tokens, 2), *tokens]
    for candidate in (text, "".join(tokens), *phrases):
        name = _ALIASES.get(candidate, candidate)
        if name in COMMON_NAMES:
            return name
    wavelength = _WAVELENGTH.search(text)
    if wavelength:
        value = float(wavelength.group(1)) * (1.0 if wavelength.group(2) == "nm" else 1000.0)
        for low, high, name in _WAVELENGTHS_NM:
            if low <= value < high:
                return name
    ids = _SENSOR_IDS.get(sensor or "sentinel2", _SENTINEL2_IDS)
    for candidate in (text, *tokens):
        match = re.fullmatch(r"(?:band)?b?0*(\d{1,2}a?)", candidate)
        if match:
            return ids.get("B" + match.group(1).upper(), text)
    return text


def _phrases(tokens: list[str], length: int) -> list[str]:
    """Adjacent runs of ``length`` tokens, joined: ``["red", "edge", "1"]`` -> ``["rededge1"]``."""
    return ["".join(tokens[i : i + length]) for i in range(len(tokens) - length + 1)]


@dataclass(frozen=True)
class BandMatch:
    """Which scene band feeds each model band, and how that was decided.

    Parameters
    ----------
    indexes : tuple of int
        1-based scene bands, in model order.
    how : str
        ``"names"`` (band descriptions), ``"colours"`` (color interpretation) or ``"--bands"``.
    """

    indexes: tuple[int, ...]
    how: str

    def describe(self, model_bands: tuple[str, ...], descriptions: tuple[str | None, ...]) -> str:
        """One line: ``scene band 3 (B4) -> red, ...``."""
        parts = []
        for band, index in zip(model_bands, self.indexes, strict=True):
            label = descriptions[index - 1] if index - 1 < len(descriptions) else None
            parts.append(f"{index}{f' ({label})' if label else ''} -> {band}")
        return f"scene bands {', '.join(parts)} (by {self.how})"


def scene_band_names(
    descriptions: tuple[str | None, ...],
    colors: tuple[str, ...] = (),
    sensor: str | None = None,
) -> tuple[tuple[str | None, ...], str]:
    """The common name of each scene band, and where the names came from.

    Band descriptions come first (a lone ``nir08`` is the near infrared where no band is ``nir``);
    where no band has one, a product's fixed order (NAIP), else GDAL's color interpretation names
    red, green and blue bands.
    """
    if any(descriptions):
        names = tuple(normalize_band_name(d, sensor) if d else None for d in descriptions)
        if "nir" not in names and names.count("nir08") == 1:
            # Landsat's only near infrared is nir08 in STAC (OLI B5, 865 nm); a Sentinel-2 stack
            # without B08 has B8A at the same wavelength
            names = tuple("nir" if n == "nir08" else n for n in names)
        return names, "names"
    if sensor == "naip" and len(descriptions) in (3, 4):
        # NAIP is delivered red, green, blue (and near infrared since 2007), unnamed
        return NAIP_ORDER[: len(descriptions)], "the NAIP product's band order"
    named = {"red": "red", "green": "green", "blue": "blue"}
    names = tuple(named.get(c.lower()) for c in colors)
    return names, "colours"


def resolve_bands(
    model_bands: tuple[str, ...],
    descriptions: tuple[str | None, ...],
    requested: tuple[str, ...] | None = None,
    colors: tuple[str, ...] = (),
    sensor: str | None = None,
) -> BandMatch:
    """Choose which scene band (1-based) feeds each model band, in the model's order.

    Parameters
    ----------
    model_bands : tuple of str
        The model's bands as common names.
    descriptions : tuple of str or None
        The scene's band descriptions, one per band.
    requested : tuple of str, optional
        The user's ``--bands``: 1-based indexes or band descriptions, one per model band.
    colors : tuple of str
        The scene's color interpretation per band (``red``, ``gray`` ...).
    sensor : str, optional
        How to read bare band ids (see :func:`normalize_band_name`).

    Returns
    -------
    BandMatch

    Raises
    ------
    BandMappingError
        If the bands cannot be matched; the message names the bands the model needs.
    """
    count = len(descriptions)
    needs = ", ".join(model_bands)
    if requested is not None:
        if len(requested) != len(model_bands):
            raise BandMappingError(
                f"--bands gives {len(requested)} bands but the model needs {len(model_bands)} "
                f"({needs})"
            )
        indexes = tuple(_resolve_one(item, descriptions, sensor) for item in requested)
        return BandMatch(indexes, "--bands")
    names, how = scene_band_names(descriptions, colors, sensor)
    if all(band in names for band in model_bands):
        return BandMatch(tuple(names.index(band) + 1 for band in model_bands), how)
    known = [n for n in names if n]
    if not known:
        raise BandMappingError(
            f"the scene's {count} bands have no names (descriptions), so their order cannot be "
            f"known: pass --bands with the scene band of each model band ({needs})"
        )
    if sensor == "landsat":
        raise BandMappingError(f"the scene's bands ({', '.join(map(str, names))}){_WHICH_LANDSAT}")
    missing = [b for b in model_bands if b not in names]
    raise BandMappingError(
        f"the scene's bands ({', '.join(str(n) for n in names)}) lack {', '.join(missing)}, "
        f"which the model needs ({needs}): pass --bands or another --model"
    )


def repeated_bands(
    match: BandMatch,
    model_bands: tuple[str, ...],
    descriptions: tuple[str | None, ...],
    colors: tuple[str, ...] = (),
    sensor: str | None = None,
) -> str:
    """One line naming model bands that several scene bands are named as, or ``""``.

    A two-date stack (``red, green, blue, nir, red, green, blue, nir``) matched by names feeds
    the first of each; that is said, so that a user who meant the second passes ``--bands``.
    """
    if match.how == "--bands":
        return ""
    names = scene_band_names(descriptions, colors, sensor)[0]
    parts = []
    for band, used in zip(model_bands, match.indexes, strict=True):
        same = [i + 1 for i, n in enumerate(names) if n == band]
        if len(same) > 1:
            parts.append(f"{band} is scene bands {', '.join(map(str, same))} (band {used} used)")
    if not parts:
        return ""
    return "several scene bands have one name: " + "; ".join(parts) + " (--bands chooses others)"


def which_landsat_hint(sensor: str | None) -> str:
    """Why band ids were not read, for a message, where the scene is Landsat but not which."""
    return _WHICH_LANDSAT if sensor == "landsat" else ""


def _resolve_one(item: str, descriptions: tuple[str | None, ...], sensor: str | None) -> int:
    count = len(descriptions)
    text = item.strip()
    if text.isdigit():
        index = int(text)
        if not 1 <= index <= count:
            raise BandMappingError(
                f"--bands index {index} is out of range: the scene has bands 1-{count}"
            )
        return index
    exact = [i + 1 for i, d in enumerate(descriptions) if d and d.strip().lower() == text.lower()]
    if exact:
        return exact[0]
    wanted = normalize_band_name(text, sensor)
    named = [
        i + 1 for i, d in enumerate(descriptions) if d and normalize_band_name(d, sensor) == wanted
    ]
    if named:
        return named[0]
    available = ", ".join(f"{i + 1}={d}" for i, d in enumerate(descriptions) if d) or "none"
    raise BandMappingError(
        f"--bands names {text!r}, which is no band of the scene (descriptions: {available})"
    )
