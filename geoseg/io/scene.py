"""Opening and checking input scenes: the one place that turns a path into a :class:`Scene`.

Preflight catches at the boundary everything that would otherwise fail deep inside a long run:
a missing or non-raster file, a truncated GeoTIFF, no CRS, no geotransform.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geoseg.bands import scene_band_names
from geoseg.core import first_line
from geoseg.errors import InvalidSceneError
from geoseg.io.cloud_mask import FLAGGED, CloudMask, cloud_source, find_cloud_mask
from geoseg.io.gdal import open_raster
from geoseg.io.product_metadata import read_landsat_mtl
from geoseg.io.products import REFLECTANCE_LEVEL_TAG, is_product, product_dataset
from geoseg.radiometry import SceneRadiometricInfo, landsat_band_numbers

log = logging.getLogger(__name__)

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass(frozen=True)
class Scene:
    """What geoseg needs to know about an input raster, read once at preflight.

    Parameters
    ----------
    path : str
        The dataset name as given to GDAL (a file, a VRT, or a ``/vsizip/`` path).
    width, height, count : int
        Size in pixels and number of bands.
    dtype : str
        Data type of the bands (all bands share it).
    crs : rasterio.crs.CRS
        Coordinate reference system.
    transform : affine.Affine
        Pixel-to-CRS transform.
    nodata : float or None
        Declared nodata value, if any (masks and alpha bands are honoured as well).
    descriptions : tuple of str or None
        Band descriptions, one per band.
    block_shape : tuple of int
        ``(rows, cols)`` of the file's internal blocks (strips are ``(rows, width)``).
    gsd : float
        Ground sample distance in metres (geometric mean of x and y; geodesic for geographic CRSs).
    scales, offsets : tuple of float
        GDAL's per-band scale and offset (1 and 0 where the file declares none).
    colors : tuple of str
        GDAL's color interpretation of each band (``red``, ``gray``, ``undefined`` ...).
    tags : mapping
        The dataset's metadata tags.
    landsat_mtl : mapping or None
        The Landsat metadata file beside the scene, parsed (see
        :func:`geoseg.io.product_metadata.parse_mtl`), if one belongs to it.
    landsat_mtl_name : str or None
        That file's name.
    cloud_mask : CloudMask or None
        The scene's cloud mask band (Landsat ``QA_PIXEL``, Sentinel-2 ``SCL`` or ``QA60``; see
        :mod:`geoseg.io.cloud_mask`): the pixels it flags are read as nodata.
    label : str
        What messages call the scene when ``path`` is not what the user gave (a product read
        through a VRT).
    """

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: CRS
    transform: Affine
    nodata: float | None
    descriptions: tuple[str | None, ...]
    block_shape: tuple[int, int]
    gsd: float
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    colors: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    landsat_mtl: Mapping[str, str] | None = None
    landsat_mtl_name: str | None = None
    cloud_mask: CloudMask | None = None
    label: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def name(self) -> str:
        """The file (or product) name without its folders."""
        return self.label or self.path.replace("\\", "/").rsplit("/", 1)[-1]

    def radiometric_info(self) -> SceneRadiometricInfo:
        """What the scene says about its values (for :mod:`geoseg.radiometry`)."""
        return SceneRadiometricInfo(
            name=self.name,
            dtype=self.dtype,
            scales=self.scales or (1.0,) * self.count,
            offsets=self.offsets or (0.0,) * self.count,
            landsat_mtl=self.landsat_mtl,
            landsat_mtl_name=self.landsat_mtl_name,
            level=self.tags.get(REFLECTANCE_LEVEL_TAG, "").lower() or None,
            acquired=self.acquired,
            centre=self.centre_lonlat,
            sensor=self.sensor,
            spacecraft=self.spacecraft,
            tags=self.tags,
            band_names=tuple(
                n for n in scene_band_names(self.descriptions, self.colors, self.sensor)[0] if n
            ),
        )

    @property
    def centre_lonlat(self) -> tuple[float, float] | None:
        """``(longitude, latitude)`` of the scene's centre, or ``None`` if it cannot be known."""
        from rasterio.warp import transform as warp_points

        x, y = self.transform * (self.width / 2, self.height / 2)
        try:
            lons, lats = warp_points(self.crs, "EPSG:4326", [x], [y])
        except (RasterioError, ValueError):
            return None
        lon, lat = float(lons[0]), float(lats[0])
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        return lon, lat

    @property
    def acquired(self) -> str:
        """The acquisition date (``YYYY-MM-DD``) the file says, or ``""``.

        From its acquisition tags (:data:`DATE_TAGS`, any case), its Landsat MTL, then the
        generic ``DATETIME``/``DATE`` tags and ``TIFFTAG_DATETIME`` (which may be when the file
        was written, so they come after the MTL), else a product name's date
        (``S2B_MSIL2A_20230705T...``, ``LC08_L1TP_017051_20151205_...``). A processing or
        production date is never read as the acquisition's.
        """
        mtl = self.landsat_mtl or {}
        tags = {key.upper(): value for key, value in self.tags.items()}
        for text in (
            *(tags.get(k, "") for k in DATE_TAGS),
            mtl.get("DATE_ACQUIRED", ""),
            *(tags.get(k, "") for k in GENERIC_DATE_TAGS),
            tags.get("TIFFTAG_DATETIME", "").replace(":", "-", 2),
        ):
            match = re.match(r"(\d{4})-(\d{2})-(\d{2})", text.strip())
            if match:
                return "-".join(match.groups())
        match = re.search(
            r"(?:^|[_-])((?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?:T\d{6})?(?:[_.-]|$)",
            self.name,
        )
        if match:
            day = match.group(1)
            return f"{day[:4]}-{day[4:6]}-{day[6:]}"
        dashed = re.search(
            r"(?:^|[_-])((?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01]))(?:[_.]|$)",
            self.name,
        )
        return dashed.group(1) if dashed else ""

    @property
    def spacecraft(self) -> str:
        """``LANDSAT_5`` ... ``LANDSAT_9`` where the file says which Landsat it is, else ``""``.

        From its MTL, its product name (``LC08_``, ``LT05_``, ``LE07_``), ``landsat8`` or
        ``Landsat-5`` in its name or sensor tags, or TM/ETM+/OLI there.
        """
        spacecraft = (self.landsat_mtl or {}).get("SPACECRAFT_ID", "").strip('"')
        if spacecraft:
            return spacecraft
        prefix = self.name[:4].upper()
        named = {
            "LC08": "LANDSAT_8",
            "LC09": "LANDSAT_9",
            "LE07": "LANDSAT_7",
            "LT05": "LANDSAT_5",
            "LT04": "LANDSAT_4",
        }.get(prefix)
        if named:
            return named
        words = " ".join((self.name, *(self.tags.get(k, "") for k in _SENSOR_TAGS)))
        number = re.search(r"landsat[\s_-]?0?([4-9])", words, re.IGNORECASE)
        if number:
            return f"LANDSAT_{number.group(1)}"
        if re.search(r"(?<![A-Za-z])ETM\+?(?![A-Za-z])", words):
            return "LANDSAT_7"
        if re.search(r"(?<![A-Za-z])TM(?![A-Za-z])", words):
            return "LANDSAT_5"
        if re.search(r"(?<![A-Za-z])OLI(?![A-Za-z])", words):
            return "LANDSAT_8"
        return ""

    @property
    def sensor(self) -> str | None:
        """``landsat-oli``, ``landsat-tm``, ``landsat`` (which is not known), ``naip`` or ``None``.

        How to read the bands' ids (see :func:`geoseg.bands.normalize_band_name`).
        """
        spacecraft = self.spacecraft
        if not spacecraft and _NAIP_NAME.match(self.name):
            return "naip"
        if not spacecraft:
            return self._sensor_from_band_ids()
        return "landsat-oli" if landsat_band_numbers(spacecraft).get("blue") == 2 else "landsat-tm"

    def _sensor_from_band_ids(self) -> str | None:
        """The sensor that band ids alone imply, where they can only be Landsat's.

        Landsat Collection 2 Level-2 ids (``SR_B5``): OLI has SR_B1-SR_B7, TM/ETM+ no SR_B6 (their
        band 6 is thermal, ``ST_B6``); a set with neither SR_B6 nor SR_B7 (``SR_B2``-``SR_B5``, an
        RGB-NIR export) could be either, and the same id is another band on each: ``landsat``, so
        that no id is read until a file name, MTL or tag says which Landsat. Bare ids (``B5``) are
        Sentinel-2's unless the set cannot be:
        bands 1-7 only, with no B8 (Sentinel-2's 10 m NIR, which every Sentinel-2 stack for land
        cover keeps) and with B6 (OLI's SWIR) or, without B6, with B7 (TM/ETM+'s SWIR 2).
        """
        # a cloud mask band (QA_PIXEL, SCL) is not a reflectance band: it says nothing of numbering
        described = [d.strip().upper() for d in self.descriptions if d]
        described = [d for d in described if d not in FLAGGED]
        ids = {d for d in described if re.fullmatch(r"(SR|ST)_B\d{1,2}", d)}
        if ids:
            if "SR_B6" in ids or "ST_B10" in ids:
                return "landsat-oli"
            return "landsat-tm" if "SR_B7" in ids or "ST_B6" in ids else "landsat"
        bare = {
            int(match.group(1))
            for d in described
            if (match := re.fullmatch(r"(?:BAND[\s_]?|B)0*(\d{1,2})", d))
        }
        if len(bare) < 4 or len(bare) != len(described) or not bare <= set(range(1, 8)):
            return None
        if 6 in bare:
            return "landsat-oli"
        return "landsat-tm" if 7 in bare else None


#: Tags that hold the acquisition date (exporters' and STAC's names), in the order read.
DATE_TAGS = (
    "ACQUISITION_DATE",
    "DATE_ACQUIRED",
    "ACQUIRED",
    "SENSING_TIME",
    "SENSING_DATE",
    "SENSING_START",
    "DATATAKE_SENSING_START",
    "PRODUCT_START_TIME",
    "START_DATETIME",
)
#: Tags that may hold the acquisition date or when the file was written: read after an MTL.
GENERIC_DATE_TAGS = ("DATETIME", "DATE")
#: NAIP quarter-quad file names: m_<quad>_<quarter>_<utm zone>_<resolution>_<date>.
_NAIP_NAME = re.compile(r"m_\d{7}_(ne|nw|se|sw)_\d{2}_\d{1,3}_\d{8}", re.IGNORECASE)
#: Tags that may name the sensor (GDAL's and common exporters').
_SENSOR_TAGS = ("SENSOR", "SPACECRAFT", "SPACECRAFT_ID", "PLATFORM", "SATELLITE", "MISSION")


def open_scene(path: str | Path) -> Scene:
    """Open a scene, check it is usable for segmentation and describe it.

    Raises
    ------
    InvalidSceneError
        If the file is missing, is not a raster, is corrupt or truncated, has no CRS or no
        geotransform, or has an unsupported data type.
    """
    name = str(path)
    if "://" not in name and not name.startswith("/vsi") and not Path(name).exists():
        raise InvalidSceneError(f"scene {name} does not exist")
    label = ""
    if "://" not in name and not name.startswith("/vsi") and is_product(name):
        name, label = product_dataset(name)
    try:
        with open_raster(name) as src:
            scene = _describe(src, name)
            _check_readable(src, name)
    except RasterioError as exc:
        raise InvalidSceneError(
            f"scene {label or name} is not a readable raster: {first_line(exc)}"
        ) from exc
    return dataclasses.replace(scene, label=label) if label else scene


def _describe(src: Any, name: str) -> Scene:
    if src.crs is None:
        raise InvalidSceneError(f"scene {name} has no CRS: assign one (e.g. gdal_edit.py -a_srs)")
    if src.transform == Affine.identity() and not src.gcps[0]:
        raise InvalidSceneError(f"scene {name} has no geotransform: it is not georeferenced")
    if abs(src.transform.b) > 0 or abs(src.transform.d) > 0:
        raise InvalidSceneError(f"scene {name} is rotated: warp it to a north-up grid first")
    dtypes = set(src.dtypes)
    if len(dtypes) != 1:
        raise InvalidSceneError(f"scene {name} mixes band data types {sorted(dtypes)}")
    dtype = src.dtypes[0]
    if dtype not in SUPPORTED_DTYPES:
        raise InvalidSceneError(
            f"scene {name} has data type {dtype}; supported: {', '.join(SUPPORTED_DTYPES)}"
        )
    rows, cols = src.block_shapes[0]
    mtl = read_landsat_mtl(name)
    if mtl is not None and not _mtl_covers(mtl[0], src):
        log.warning("%s does not cover scene %s: ignoring it", mtl[1], name)
        mtl = None
    return Scene(
        path=name,
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=dtype,
        crs=src.crs,
        transform=src.transform,
        nodata=src.nodata,
        descriptions=tuple(src.descriptions),
        block_shape=(int(rows), int(cols)),
        gsd=ground_sample_distance(src.crs, src.transform, src.width, src.height),
        scales=tuple(float(v) for v in src.scales),
        offsets=tuple(float(v) for v in src.offsets),
        colors=tuple(c.name for c in src.colorinterp),
        tags=dict(src.tags()),
        landsat_mtl=mtl[0] if mtl else None,
        landsat_mtl_name=mtl[1] if mtl else None,
        cloud_mask=find_cloud_mask(src, name),
    )


def _mtl_covers(mtl: Mapping[str, str], src: Any) -> bool:
    """Whether an MTL's product extent holds the scene (1 km of slack for rebuilt origins)."""
    try:
        left = float(mtl["CORNER_UL_PROJECTION_X_PRODUCT"])
        top = float(mtl["CORNER_UL_PROJECTION_Y_PRODUCT"])
        right = float(mtl["CORNER_LR_PROJECTION_X_PRODUCT"])
        bottom = float(mtl["CORNER_LR_PROJECTION_Y_PRODUCT"])
    except (KeyError, ValueError):
        return False
    b = src.bounds
    slack = 1000.0
    return bool(
        b.left >= left - slack
        and b.right <= right + slack
        and b.bottom >= bottom - slack
        and b.top <= top + slack
    )


def _check_readable(src: Any, name: str) -> None:
    """Decode the first and last block of every band: truncated files fail here, not mid-run."""
    rows, cols = src.block_shapes[0]
    last_row = max(src.height - rows, 0)
    last_col = max(src.width - cols, 0)
    for row, col in ((0, 0), (last_row, last_col)):
        window = Window(col, row, min(cols, src.width - col), min(rows, src.height - row))
        try:
            src.read(window=window)
        except RasterioError as exc:
            raise InvalidSceneError(
                f"scene {name} is corrupt or truncated: {first_line(exc)}"
            ) from exc


def ground_sample_distance(crs: CRS, transform: Affine, width: int, height: int) -> float:
    """Pixel size in metres, geodesic at the scene centre for geographic CRSs.

    >>> from rasterio.crs import CRS
    >>> round(ground_sample_distance(CRS.from_epsg(32618), Affine(10, 0, 0, 0, -10, 0), 5, 5), 3)
    10.0
    """
    xres, yres = abs(transform.a), abs(transform.e)
    if crs.is_geographic:
        from pyproj import Geod

        geod = Geod(ellps="WGS84")
        lon, lat = transform @ (width / 2, height / 2)
        lat = max(min(lat, 89.0), -89.0)
        _, _, dx = geod.inv(lon, lat, lon + xres, lat)
        _, _, dy = geod.inv(lon, lat, lon, lat + yres if lat + yres <= 90 else lat - yres)
        return float(math.sqrt(abs(dx) * abs(dy)))
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return float(math.sqrt(xres * yres) * factor)


def read_sample(
    scene: Scene, bands: tuple[int, ...], max_pixels: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Read the pixels that fit the scene's normalization.

    A scene of at most ``max_pixels`` is read whole. A larger one is sampled by whole internal
    blocks spread evenly over it, so fitting costs a few dozen block decodes instead of a pass
    over the scene (a decimated read decodes every block it touches, i.e. all of them).

    Parameters
    ----------
    scene : Scene
        The scene.
    bands : tuple of int
        1-based band indexes, in model order.
    max_pixels : int
        Upper bound on the pixels read per band.

    Returns
    -------
    sample : np.ndarray
        ``(len(bands), h, w)`` raw values: the whole scene, or ``h == 1`` with the sampled
        blocks' pixels side by side.
    valid : np.ndarray
        ``(h, w)`` boolean, true where every selected band is valid.
    """
    indexes = list(bands)
    with open_raster(scene.path) as src, cloud_source(scene.cloud_mask) as clouds:
        if scene.width * scene.height <= max_pixels:
            data = src.read(indexes)
            return data, valid_from(data, src.read_masks(indexes)) & clouds.clear(None)
        pieces, masks = [], []
        for window in sample_windows(scene.height, scene.width, scene.block_shape, max_pixels):
            block = src.read(indexes, window=window)
            pieces.append(block.reshape(len(indexes), 1, -1))
            valid = valid_from(block, src.read_masks(indexes, window=window))
            valid &= clouds.clear(window)
            masks.append(valid.reshape(1, -1))
    return np.concatenate(pieces, axis=2), np.concatenate(masks, axis=1)


def sample_windows(
    height: int, width: int, block_shape: tuple[int, int], max_pixels: int
) -> list[Window]:
    """Whole blocks spread evenly over a raster, at most ``max_pixels`` in all (at least one).

    >>> [(w.row_off, w.col_off) for w in sample_windows(1000, 1000, (256, 256), 4 * 65536)]
    [(0, 0), (0, 768), (768, 0), (768, 768)]
    """
    block_h, block_w = min(block_shape[0], height), min(block_shape[1], width)
    grid_rows, grid_cols = math.ceil(height / block_h), math.ceil(width / block_w)
    budget = max(1, max_pixels // (block_h * block_w))
    # a sub-grid of blocks with about the block grid's aspect ratio
    picks_r = max(1, min(grid_rows, round(math.sqrt(budget * grid_rows / grid_cols))))
    picks_c = max(1, min(grid_cols, budget // picks_r))
    rows = sorted({round(x) for x in np.linspace(0, grid_rows - 1, picks_r)})
    cols = sorted({round(x) for x in np.linspace(0, grid_cols - 1, picks_c)})
    return [
        Window(
            c * block_w,
            r * block_h,
            min(block_w, width - c * block_w),
            min(block_h, height - r * block_h),
        )
        for r in rows
        for c in cols
    ]


def fill_values(dtype: Any) -> tuple[float, ...]:
    """Values that, held by every band of a pixel, make it fill whatever the file declares.

    0 for every type (an undeclared collar; no sensor measures exactly 0 in every band); for
    signed and float types also -9999 (the fill of many reflectance exports) and the type's
    lowest value (-32768 for int16), which no reflectance is.

    >>> fill_values("uint16"), fill_values("int16")
    ((0,), (0, -9999, -32768))
    """
    kind = np.dtype(dtype)
    if kind.kind not in "if":
        return (0,)
    low = np.iinfo(kind).min if kind.kind == "i" else float(np.finfo(kind).min)
    return (0, -9999, int(low) if kind.kind == "i" else low)


def fill_pixels(data: np.ndarray) -> np.ndarray:
    """``(H, W)`` (or ``(N,)`` for ``(bands, N)``): pixels that hold a fill value in every band."""
    return ~_not_fill(data)


def _not_fill(data: np.ndarray) -> np.ndarray:
    # band by band, so no temporary is larger than one band
    others = fill_values(data.dtype)[1:]
    result: np.ndarray | None = None
    for band in data:
        not_fill = band != 0
        for value in others:
            not_fill &= band != value
        result = not_fill if result is None else result | not_fill
    assert result is not None  # a scene has at least one band
    return result


def valid_from(data: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """Valid-pixel mask: every band valid by GDAL's masks, finite, and not fill in every band.

    A pixel that holds a fill value (:func:`fill_values`: 0, and -9999 or the type's lowest for
    signed types) in every band is fill, whatever the file declares: an undeclared collar, or a
    cloud mask written as 0 under a wrong nodata tag, must not be classified as land or water.
    ``masks`` is ``None`` where GDAL says every pixel is valid (nothing to read); one mask
    stands for every band.

    Band by band, so no temporary is larger than one band (a whole-stack comparison allocates
    fresh memory the size of the strip and page-faults it in, for every strip of a scene).
    """
    valid = _not_fill(data)
    for mask in masks if masks is not None else ():
        valid &= mask > 0
    if np.issubdtype(data.dtype, np.floating):
        for band in data:
            valid &= np.isfinite(band)
    return valid


def copy_window(scene: Scene, window: tuple[int, int, int, int], out: Path) -> Path:
    """Write rows ``r0:r1`` and columns ``c0:c1`` of a scene as a GeoTIFF with its metadata.

    Band descriptions, color interpretation, scales, offsets, nodata and tags carry over, so
    the copy says what the scene says about its bands and values (a Landsat MTL beside the
    scene does not: pass what it decided explicitly).
    """
    r0, r1, c0, c1 = window
    area = Window(c0, r0, c1 - c0, r1 - r0)
    with open_raster(scene.path) as src:
        data = src.read(window=area)
        masks = src.read_masks(window=area)
        profile = {
            "driver": "GTiff",
            "width": c1 - c0,
            "height": r1 - r0,
            "count": src.count,
            "dtype": src.dtypes[0],
            "crs": src.crs,
            "transform": src.window_transform(area),
            "nodata": src.nodata,
            "tiled": True,
            "compress": "deflate",
        }
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data)
            if src.nodata is None and not np.all(masks > 0):
                dst.write_mask(np.all(masks > 0, axis=0).astype(np.uint8) * 255)
            dst.descriptions = src.descriptions
            dst.colorinterp = src.colorinterp
            dst.scales, dst.offsets = src.scales, src.offsets
            dst.update_tags(**src.tags())
    return out
