"""The decision from metadata: the user's word, the file's, its MTL's, its name's, else its type's.

:func:`resolve_radiometry` walks the order of :mod:`geoseg.radiometry` before any pixel is read;
:func:`geoseg.radiometry.assume.assume_from_sample` may then refine what it had to assume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from geoseg.errors import ConfigError
from geoseg.radiometry.landsat import (
    TM_DN_GAIN,
    landsat_dn8,
    landsat_level1,
    landsat_radiometry,
)
from geoseg.radiometry.products import (
    NAIP_REFLECTANCE,
    PRODUCTS,
    product_from_name,
    sentinel2_from_tags,
)
from geoseg.radiometry.values import (
    Radiometry,
    RadiometryRequest,
    SceneRadiometricInfo,
    _uniform,
)


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
    by_tags = sentinel2_from_tags(info.tags)
    if by_tags is not None:
        product = PRODUCTS[by_tags[0]]
        return _uniform(product.scale, product.offset, count, by_tags[1], surface=product.surface)
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
    landsat = _is_landsat_dn8(info, band_names)
    if info.dtype == "uint8" and landsat and info.centre is not None:
        return landsat_dn8(info, band_names)
    return _from_dtype(info.dtype, count, landsat)


def _is_landsat_dn8(info: SceneRadiometricInfo, band_names: Sequence[str]) -> bool:
    """Whether 8-bit values are Landsat 4-7 DN.

    So they are where short-wave infrared is among the model's or the scene's named bands (only
    satellites record it), or the file says it is Landsat 4-7.
    """
    swir = {"swir16", "swir22"}
    return bool(swir & {*band_names, *info.band_names}) or info.spacecraft in (
        "LANDSAT_4",
        "LANDSAT_5",
        "LANDSAT_7",
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


def _per_band(values: tuple[float, ...], count: int, what: str) -> tuple[float, ...]:
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ConfigError(
            f"--{what} gives {len(values)} values: give one, or one per model band ({count})"
        )
    return values


def _from_dtype(dtype: str, count: int, is_landsat_dn8: bool) -> Radiometry:
    if dtype.startswith("float"):
        return _uniform(1.0, 0.0, count, "assumed reflectance (0-1): float data", True)
    if dtype == "uint8" and is_landsat_dn8:
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
