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
5. an assumption, said in one line and recorded: floats are reflectance (unless their median is
   above 2, which reflectance never is: then they are read as 16-bit integers would be, or as
   percent where their vegetation's near infrared says so), 8-bit
   integers ``DN / 255`` (the documented mapping for 8-bit imagery with no radiometric metadata,
   e.g. orthophotos) unless the file holds short-wave infrared bands (whichever bands a model
   reads), which only satellites record, or says it is Landsat 4-7: then
   Landsat TM/ETM+ DN, converted with their typical radiance gains, the sun elevation of the
   scene's date and place and the Earth-Sun distance (:func:`landsat_dn8`); 16- and 32-bit integers
   reflectance x 10000, unless the darkest percent of the short-wave infrared (of every band,
   for models without it) lies at 5000 or above: Landsat
   Collection 2 DN always do (their zero reflectance is 5000 in Level-1, 7273 in Level-2), while
   reflectance x 10000 puts water, shade, vegetation, snow and even cloud below 0.5 there. They are
   Level-2 surface reflectance DN if that darkest percent is 7100 or more (Level-1 puts dark
   pixels near 5000), else Level-1 DN (:func:`assume_from_sample`); and Sentinel-2 values of
   processing baseline 04.00 on (x 10000 + 1000) where no band's darkest percent is below 800
   and, with the 1000 taken off, half a percent of the pixels are water.

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

The package decides; :mod:`geoseg.io.product_metadata` reads the metadata files. It is in seven
parts, each importing only those listed before it:

* :mod:`geoseg.radiometry.products`: the named conventions (``--product``) and the products a
  file name reveals;
* :mod:`geoseg.radiometry.values`: the request, what the scene says, and the decision;
* :mod:`geoseg.radiometry.sun`: sun elevation, Earth-Sun distance and solar irradiance;
* :mod:`geoseg.radiometry.landsat`: Landsat gains, from the MTL or typical ones without it;
* :mod:`geoseg.radiometry.resolve`: the decision before any value is read (steps 1-4, and 5
  by the data type);
* :mod:`geoseg.radiometry.assume`: refining assumptions from a sample of the values;
* :mod:`geoseg.radiometry.model_level`: surface reflectance given a top-of-atmosphere look for
  models trained on that.

>>> info = SceneRadiometricInfo("ortho.tif", "uint8", scales=(1.0,) * 3, offsets=(0.0,) * 3)
>>> resolve_radiometry(info, (1, 2, 3), ("red", "green", "blue")).source
'assumed DN / 255: 8-bit data'
"""

from __future__ import annotations

from geoseg.radiometry.assume import (
    LANDSAT_DN_FLOOR,
    LANDSAT_L1_BLUE_EXCESS,
    LANDSAT_L1_BLUE_FLOOR,
    LANDSAT_L2_FLOOR,
    SURFACE_BLUE_CEILING,
    assume_from_sample,
)
from geoseg.radiometry.landsat import (
    TM_DN_GAIN,
    landsat_band_numbers,
    landsat_dn8,
    landsat_level1,
    landsat_radiometry,
)
from geoseg.radiometry.model_level import PATH_REFLECTANCE, to_model_level
from geoseg.radiometry.products import NAIP_REFLECTANCE, PRODUCTS, Product, product_from_name
from geoseg.radiometry.resolve import naip_radiometry, resolve_radiometry
from geoseg.radiometry.sun import landsat_sun_elevation
from geoseg.radiometry.values import Radiometry, RadiometryRequest, SceneRadiometricInfo

__all__ = [
    "LANDSAT_DN_FLOOR",
    "LANDSAT_L1_BLUE_EXCESS",
    "LANDSAT_L1_BLUE_FLOOR",
    "LANDSAT_L2_FLOOR",
    "NAIP_REFLECTANCE",
    "PATH_REFLECTANCE",
    "PRODUCTS",
    "SURFACE_BLUE_CEILING",
    "TM_DN_GAIN",
    "Product",
    "Radiometry",
    "RadiometryRequest",
    "SceneRadiometricInfo",
    "assume_from_sample",
    "landsat_band_numbers",
    "landsat_dn8",
    "landsat_level1",
    "landsat_radiometry",
    "landsat_sun_elevation",
    "naip_radiometry",
    "product_from_name",
    "resolve_radiometry",
    "to_model_level",
]
