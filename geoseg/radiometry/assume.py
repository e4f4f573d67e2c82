"""Refining assumptions from a sample of the scene's stored values.

Where nothing in the metadata said what the values are, a sample's darkest percent tells
Landsat Collection 2 DN from reflectance x 10000, Level-1 from Level-2 DN, and surface from
top-of-atmosphere reflectance; the brightness of its vegetation tells reflectance x 1000 (and,
for floats, percent) from x 10000 (see :mod:`geoseg.radiometry`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from geoseg.radiometry.landsat import landsat_level1
from geoseg.radiometry.products import PRODUCTS
from geoseg.radiometry.values import Radiometry, SceneRadiometricInfo, _uniform

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
    DN, and an unknown level becomes surface or top-of-atmosphere reflectance (see
    :mod:`geoseg.radiometry`). Declared and user-given scales are kept as they are.

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

    values = np.asarray(sample)[:, np.asarray(valid)]
    if values.shape[1] < 100:
        return radiometry
    darkest = darkest_percent(values)
    # floats are assumed 0-1 reflectance, integers x 10000; vegetation, where there is some,
    # says which power of ten they are. The data type decides what is a float, and only the
    # 0-1 assumption is open to the float scales (a declared or user-given scale stays)
    floats = (
        values.dtype.kind == "f"
        and radiometry.assumed
        and radiometry.scale[0] == 1.0
        and not any(radiometry.offset)
    )
    scales = FLOAT_SCALES if floats else INTEGER_SCALES
    decided = _vegetation_decade(radiometry, values, band_names, scales)
    if floats and decided is radiometry:
        decided = _scaled_floats(radiometry, values)
    swir = [i for i, b in enumerate(band_names) if b in ("swir16", "swir22")]
    floor = float(darkest[swir].min()) if swir else float(darkest.min())
    if decided.assumed and decided.scale[0] == 1e-4 and floor >= LANDSAT_DN_FLOOR:
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
    decided = _baseline_offset(decided, values, darkest, band_names)
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


#: Stored value at or above which every band's darkest percent lies in a Sentinel-2 file of
#: processing baseline 04.00 or later, whose values are reflectance x 10000 + 1000.
BASELINE_OFFSET_FLOOR = 800.0
#: What water is, in reflectance: near and short-wave infrared this dark, green brighter than
#: near infrared. Loose enough for hazy top-of-atmosphere lakes (s2-brandenburg in February: near
#: infrared 0.064, swir16 0.019, swir22 0.011 at the median of its water); a file without the
#: offset never gets here (its water, ice and shade lie far under the floor).
WATER_NIR_MAX = 0.08
WATER_SWIR_MAX = {"swir16": 0.04, "swir22": 0.03}
WATER_GREEN_EXCESS = 0.01


def _baseline_offset(
    radiometry: Radiometry, values: Any, darkest: Any, band_names: Sequence[str]
) -> Radiometry:
    """Values assumed reflectance x 10000 that are Sentinel-2 values of baseline 04.00 on.

    Since processing baseline 04.00 (25 January 2022, and the reprocessed archive) Sentinel-2
    stores reflectance x 10000 + 1000; a stack made from the product's band files keeps the 1000
    and loses the metadata that says so. Read without it, every reflectance is 0.1 too bright,
    which puts water among the bright classes. Such a file has no value below about 1000 in any
    band, and with the 1000 taken off its water is water again. Both are asked of the sample:
    every band's darkest percent at or above :data:`BASELINE_OFFSET_FLOOR` (a file without the
    offset that holds water or shade has its infrared far below it) and, with the offset, at
    least half a percent of the pixels water (dark near and short-wave infrared, green brighter
    than near infrared). A file with the offset and no water keeps the assumption: nothing in its
    values tells it apart from bright dry ground.
    """
    import numpy as np

    names = list(band_names)
    if (
        not radiometry.assumed
        or set(radiometry.scale) != {1e-4}
        or any(radiometry.offset)
        or "green" not in names
        or "nir" not in names
        or float(np.min(darkest)) < BASELINE_OFFSET_FLOOR
    ):
        return radiometry

    def reflectance(band: str) -> Any:
        return values[names.index(band)].astype(np.float32) * np.float32(1e-4) - np.float32(0.1)

    green, nir = reflectance("green"), reflectance("nir")
    water = (nir < WATER_NIR_MAX) & (green - nir > WATER_GREEN_EXCESS)
    for band, most in WATER_SWIR_MAX.items():
        if band in names:
            water &= reflectance(band) < most
    count = int(water.sum())
    if count < max(100, VEGETATION_SHARE * values.shape[1]):
        return radiometry
    return _uniform(
        1e-4,
        -0.1,
        len(names),
        "assumed Sentinel-2 values of processing baseline 04.00 or later ((value - 1000) / "
        f"10000): no band's darkest percent is below {BASELINE_OFFSET_FLOOR:.0f}, and with the "
        f"1000 taken off {100.0 * count / values.shape[1]:.1f}% of the pixels are water (say "
        "--product or --offset if that is wrong)",
        True,
    )


#: Median stored value above which assumed 0-1 float reflectance is reflectance x 10000 (or DN):
#: the median of land and water reflectance lies between about 0.01 and 0.6.
FLOAT_SCALED_MEDIAN = 2.0


def _scaled_floats(radiometry: Radiometry, values: Any) -> Radiometry:
    """Float data assumed 0-1 whose values are far above it: reflectance x 10000, as integers.

    Exports that turn a product's integers into floats (Earth Engine's mixed-type images, a
    resampling to float) keep the values: read as 0-1 they saturate every band.
    """
    import numpy as np

    if not radiometry.assumed or radiometry.scale[0] != 1.0 or radiometry.offset[0] != 0.0:
        return radiometry
    median = float(np.median(values[:, :: max(1, values.shape[1] // 200_000)]))
    if median <= FLOAT_SCALED_MEDIAN:
        return radiometry
    return _uniform(
        1e-4,
        0.0,
        values.shape[0],
        f"assumed reflectance x 10000: float data whose median is {median:.0f}, which "
        "reflectance (0-1) never is",
        True,
    )


#: Typical near infrared of vegetation, in reflectance (it reflects 0.15-0.6 of it): the scale
#: that puts the sample's vegetation nearest to it (by ratio) is the file's.
TYPICAL_VEGETATION_NIR = 0.3
#: What vegetation is here: NDVI above this, on the stored values (a ratio, whatever the scale).
VEGETATION_NDVI = 0.5
#: Near infrared, in reflectance at the largest candidate scale, below which a pixel is too dark
#: for its NDVI to mean anything (water's noise): far under any vegetation at every scale.
VEGETATION_NIR_MIN = 0.05
#: Share of the sampled pixels that must be vegetation for the test to speak.
VEGETATION_SHARE = 0.005
#: What each scale the vegetation test can choose means.
DECADE_NAMES = {1.0: "0-1", 1e-2: "percent (x 100)", 1e-3: "x 1000", 1e-4: "x 10000"}
#: The scales it chooses between for floats (exporters write reflectance, percent, or the
#: product's integers as floats) and for integers (no product stores percent in integers).
FLOAT_SCALES = (1.0, 1e-2, 1e-3, 1e-4)
INTEGER_SCALES = (1e-3, 1e-4)


def _vegetation_decade(
    radiometry: Radiometry, values: Any, band_names: Sequence[str], scales: Sequence[float]
) -> Radiometry:
    """The power of ten that puts the sample's vegetation where vegetation is.

    Reflectance x 1000 products (rsgislib's and other exporters' 16-bit surface reflectance)
    declare nothing; read as x 10000 every band is ten times too dark and the map is nonsense
    (s2-aberystwyth: 16.7% of its pixels agree with the map of the right scale). Floats may be
    reflectance, percent or a product's integers. Vegetation says which: its near infrared is
    bright whatever the place, 0.15-0.6, so the scale is the one of ``scales`` that puts its
    median nearest 0.3. Without vegetation (open water) the assumption stays, and is returned
    as the same object.
    """
    import numpy as np

    names = list(band_names)
    uniform = len(set(radiometry.scale)) == 1 and not any(radiometry.offset)
    if (
        not radiometry.assumed
        or not uniform
        or radiometry.scale[0] not in scales
        or "red" not in names
        or "nir" not in names
    ):
        return radiometry
    red = values[names.index("red")].astype(np.float64)
    nir = values[names.index("nir")].astype(np.float64)
    total = nir + red
    bright_enough = nir >= VEGETATION_NIR_MIN / scales[0]
    vegetation = bright_enough & (nir - red > VEGETATION_NDVI * total)
    if vegetation.sum() < max(100, VEGETATION_SHARE * values.shape[1]):
        return radiometry
    median = float(np.median(nir[vegetation]))
    scale = min(scales, key=lambda s: abs(math.log10(median * s / TYPICAL_VEGETATION_NIR)))
    if scale == radiometry.scale[0]:
        return radiometry
    kind = "float data" if scales is FLOAT_SCALES else "integers"
    return _uniform(
        scale,
        0.0,
        len(names),
        f"assumed reflectance {DECADE_NAMES[scale]}: {kind} whose vegetation's median near "
        f"infrared is {median:.4g}, {median * scale:.2f} at that scale (vegetation reflects "
        "0.15-0.6)",
        True,
    )


def darkest_percent(values: Any) -> Any:
    """Each band's first percentile of ``(bands, N)`` values, in float64.

    The same as ``np.percentile(values, 1, axis=1)`` (linear interpolation). Integers of up
    to 16 bits (every DN product) are counted in a histogram: exact, and about ten times faster
    than sorting a sample of millions of pixels.
    """
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind not in "ui" or values.dtype.itemsize > 2 or values.shape[1] == 0:
        return np.percentile(values.astype(np.float64), 1, axis=1)
    low = int(values.min())
    position = (values.shape[1] - 1) * 0.01
    below = int(np.floor(position))
    fraction = position - below
    out = np.empty(values.shape[0], dtype=np.float64)
    for band, row in enumerate(values):
        cumulative = np.cumsum(np.bincount(row.astype(np.int64) - low))
        # the k-th smallest value (0-based) is the first whose cumulative count exceeds k
        ranks = [below, min(below + 1, row.size - 1)]
        first, second = (np.searchsorted(cumulative, ranks, side="right") + low).astype(float)
        step = second - first
        # numpy's interpolation, from the nearer end
        out[band] = first + step * fraction if fraction < 0.5 else second - step * (1 - fraction)
    return out
