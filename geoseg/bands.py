"""Matching a scene's bands to the bands a model needs.

Models name their bands with STAC ``eo:common_name`` values. Scenes name theirs (if at all) in band
descriptions, which may be common names or sensor band ids such as Sentinel-2's ``B04``.
"""

from __future__ import annotations

import re

from geoseg.errors import BandMappingError

# Sentinel-2 band ids that map to a single common name (B8A is narrow nir: nir08, not nir).
_SENTINEL2_IDS = {
    "B1": "coastal",
    "B2": "blue",
    "B3": "green",
    "B4": "red",
    "B5": "rededge",
    "B6": "rededge",
    "B7": "rededge",
    "B8": "nir",
    "B8A": "nir08",
    "B9": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
}
_ALIASES = {"swir1": "swir16", "swir2": "swir22", "near-infrared": "nir", "nir08": "nir08"}


def normalise_band_name(description: str) -> str:
    """Map a band description to a STAC common name where one is recognised.

    >>> normalise_band_name("B04"), normalise_band_name("Red"), normalise_band_name("SWIR1")
    ('red', 'red', 'swir16')
    """
    text = description.strip().lower()
    match = re.fullmatch(r"b0*(\d{1,2}a?)", text)
    if match:
        return _SENTINEL2_IDS.get("B" + match.group(1).upper(), text)
    return _ALIASES.get(text, text)


def resolve_bands(
    model_bands: tuple[str, ...],
    descriptions: tuple[str | None, ...],
    requested: tuple[str, ...] | None = None,
) -> tuple[int, ...]:
    """Choose which scene band (1-based) feeds each model band, in the model's order.

    Parameters
    ----------
    model_bands : tuple of str
        The model's bands as common names.
    descriptions : tuple of str or None
        The scene's band descriptions, one per band.
    requested : tuple of str, optional
        The user's ``--bands``: 1-based indexes or band descriptions, one per model band.

    Returns
    -------
    tuple of int
        1-based scene band indexes.

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
        return tuple(_resolve_one(item, descriptions) for item in requested)
    names = [normalise_band_name(d) if d else None for d in descriptions]
    if all(band in names for band in model_bands):
        return tuple(names.index(band) + 1 for band in model_bands)
    if count == len(model_bands):
        return tuple(range(1, count + 1))
    raise BandMappingError(
        f"the scene has {count} bands but the model needs {len(model_bands)} ({needs}) and the "
        "band descriptions do not name them: pass --bands with one scene band per model band"
    )


def _resolve_one(item: str, descriptions: tuple[str | None, ...]) -> int:
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
    wanted = normalise_band_name(text)
    named = [i + 1 for i, d in enumerate(descriptions) if d and normalise_band_name(d) == wanted]
    if named:
        return named[0]
    available = ", ".join(f"{i + 1}={d}" for i, d in enumerate(descriptions) if d) or "none"
    raise BandMappingError(
        f"--bands names {text!r}, which is no band of the scene (descriptions: {available})"
    )
