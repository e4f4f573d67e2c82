"""Reading class rasters: the one place that turns a class raster path into arrays and classes.

A geoseg class raster is single-band uint8, nodata 255, with a color table and a
``GEOSEG_CLASSES`` metadata tag holding ``[{"id": 0, "name": "urban", "color": "#d7191c"}, ...]``.
Class rasters made elsewhere are accepted too: any single-band integer raster with a CRS, its
classes named by GDAL category names (``.aux.xml``) or, failing that, only colored by its color
table. Blocks are returned *normalized*: ``uint8`` with 255 wherever the pixel is nodata, whatever
the file's own nodata value, so the stages downstream know one convention.
"""

from __future__ import annotations

import contextlib
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geoseg.core import CLASSES_TAG, NODATA, PROVENANCE_TAG, ClassInfo, Grid, first_line
from geoseg.errors import GeosegError, VectorizeError
from geoseg.io.gdal import open_raster

#: GDAL block cache (MB) while reading a class raster block by block (see :func:`block_reader`).

_INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64")

#: Reads one window of the raster as a normalized block (see module docstring).
BlockReader = Callable[[Window], np.ndarray]


@dataclass(frozen=True)
class ClassRaster:
    """What geoseg knows about a class raster after opening it.

    Parameters
    ----------
    path : str
        Dataset name as given to GDAL.
    width, height : int
        Size in pixels.
    dtype : str
        Data type of the band.
    crs : rasterio.crs.CRS
        Coordinate reference system.
    transform : affine.Affine
        Pixel-to-CRS transform.
    nodata : int or None
        The file's nodata value (blocks are normalized to :data:`NODATA` regardless).
    block_shape : tuple of int
        ``(rows, cols)`` of the file's internal blocks.
    classes : tuple of ClassInfo or None
        Classes declared by the raster itself (tag, then category names); ``None`` if neither.
    colormap : Mapping[int, tuple[int, int, int]] or None
        The color table, if any.
    provenance : str or None
        The ``GEOSEG_PROVENANCE`` tag of the raster, if any.
    tags : Mapping[str, str]
        The raster's metadata tags (a known product's legend is recognised from them).
    """

    path: str
    width: int
    height: int
    dtype: str
    crs: CRS
    transform: Affine
    nodata: int | None
    block_shape: tuple[int, int]
    classes: tuple[ClassInfo, ...] | None
    colormap: Mapping[int, tuple[int, int, int]] | None
    provenance: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        """The raster's grid."""
        return Grid(self.crs, self.transform, self.width, self.height)


def open_class_raster(path: str | PathLike[str]) -> ClassRaster:
    """Open a class raster, check it can be vectorized and describe it.

    Raises
    ------
    VectorizeError
        If the file is missing or unreadable, has more than one band, is not of an integer
        type, has no CRS, or declares malformed classes.
    """
    name = str(path)
    if "://" not in name and not name.startswith("/vsi") and not Path(name).exists():
        raise VectorizeError(f"class raster {name} does not exist")
    try:
        with open_raster(name) as src:
            if src.count != 1:
                raise VectorizeError(
                    f"class raster {name} has {src.count} bands: a class raster has exactly one"
                )
            dtype = str(src.dtypes[0])
            if dtype not in _INTEGER_DTYPES:
                raise VectorizeError(
                    f"class raster {name} has data type {dtype}: class ids must be integers"
                )
            if src.crs is None:
                raise VectorizeError(
                    f"class raster {name} has no CRS: assign one (e.g. gdal_edit.py -a_srs)"
                )
            nodata = src.nodata
            if nodata is not None and (not math.isfinite(nodata) or nodata != int(nodata)):
                raise VectorizeError(f"class raster {name} has non-integer nodata {nodata}")
            tags = src.tags()
            colormap = _read_colormap(src)
            classes = _classes_from_tag(tags.get(CLASSES_TAG), name)
            if classes is None:
                classes = _classes_from_categories(name, colormap)
            rows, cols = src.block_shapes[0]
            return ClassRaster(
                path=name,
                width=int(src.width),
                height=int(src.height),
                dtype=dtype,
                crs=src.crs,
                transform=src.transform,
                nodata=None if nodata is None else int(nodata),
                block_shape=(int(rows), int(cols)),
                classes=classes,
                colormap=colormap,
                provenance=tags.get(PROVENANCE_TAG),
                tags=dict(tags),
            )
    except RasterioError as exc:
        raise VectorizeError(
            f"class raster {name} is not a readable raster: {first_line(exc)}"
        ) from exc


@contextlib.contextmanager
def block_reader(raster: ClassRaster) -> Iterator[BlockReader]:
    """Keep the raster open and yield a function reading normalized windows.

    Raises
    ------
    VectorizeError
        If a block cannot be decoded (truncated or corrupt file).
    """
    with open_raster(raster.path) as src:

        def read(window: Window) -> np.ndarray:
            try:
                data = src.read(1, window=window)
            except RasterioError as exc:
                raise VectorizeError(
                    f"class raster {raster.path} is corrupt at {window}: {first_line(exc)}"
                ) from exc
            return normalize_block(data, raster.nodata)

        yield read


def normalize_block(data: np.ndarray, nodata: int | None) -> np.ndarray:
    """Return ``data`` as uint8 with :data:`NODATA` where it is nodata.

    Raises
    ------
    VectorizeError
        If a valid pixel holds a value outside 0-254 (255 is reserved for nodata).

    Examples
    --------
    >>> normalize_block(np.array([[0, 10], [20, 0]], dtype="uint16"), nodata=0).tolist()
    [[255, 10], [20, 255]]
    """
    if data.dtype == np.uint8 and nodata == NODATA:
        return data  # already geoseg's convention: nothing to check or copy
    valid = np.ones(data.shape, dtype=bool) if nodata is None else data != nodata
    values = data[valid]
    if values.size:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > NODATA - 1:
            raise VectorizeError(
                f"class value {high if high > NODATA - 1 else low} is outside 0-254: class ids "
                "must fit 0-254 (255 is reserved for nodata); set the raster's nodata or remap it"
            )
    out = np.full(data.shape, NODATA, dtype=np.uint8)
    out[valid] = data[valid]
    return out


def read_decimated(raster: ClassRaster, max_pixels: int = 2_000_000) -> np.ndarray:
    """Nearest-neighbour decimated view of the whole raster, normalized.

    Overviews are used where the file has them (built with mode resampling by geoseg's writer).
    """
    factor = max(1.0, math.sqrt(raster.width * raster.height / max_pixels))
    out_h = max(1, round(raster.height / factor))
    out_w = max(1, round(raster.width / factor))
    try:
        with open_raster(raster.path) as src:
            data = src.read(1, out_shape=(out_h, out_w), resampling=Resampling.nearest)
    except RasterioError as exc:
        raise VectorizeError(
            f"class raster {raster.path} cannot be read: {first_line(exc)}"
        ) from exc
    return normalize_block(data, raster.nodata)


def read_classes_file(path: str | PathLike[str]) -> tuple[ClassInfo, ...]:
    """Read classes from a YAML or JSON file.

    The file holds a list of ``{id, name, color}`` mappings, or a mapping with such a list under
    ``classes``.

    Raises
    ------
    VectorizeError
        If the file is missing, does not parse, or an entry is malformed or duplicated.
    """
    file = Path(path)
    if not file.is_file():
        raise VectorizeError(f"classes file {file} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, ImportError) as exc:
        raise VectorizeError(f"classes file {file} does not parse: {first_line(exc)}") from exc
    except Exception as exc:  # yaml.YAMLError does not derive from ValueError
        raise VectorizeError(f"classes file {file} does not parse: {first_line(exc)}") from exc
    if isinstance(data, dict) and "classes" in data:
        data = data["classes"]
    return classes_from_records(data, f"classes file {file}")


def classes_from_records(data: Any, where: str) -> tuple[ClassInfo, ...]:
    """Build classes from a list of ``{id, name, color}`` records, checking ids are unique.

    Raises
    ------
    VectorizeError
        If ``data`` is not such a list, an entry is malformed or an id repeats.
    """
    if not isinstance(data, Sequence) or isinstance(data, str) or not data:
        raise VectorizeError(f"{where} must hold a non-empty list of {{id, name, color}} entries")
    classes: list[ClassInfo] = []
    for entry in data:
        if not isinstance(entry, Mapping) or set(entry) != {"id", "name", "color"}:
            raise VectorizeError(
                f"{where}: entry {entry!r} must have exactly the keys id, name, color"
            )
        try:
            classes.append(ClassInfo(int(entry["id"]), str(entry["name"]), str(entry["color"])))
        except (GeosegError, TypeError, ValueError) as exc:
            raise VectorizeError(f"{where}: {first_line(exc)}") from exc
    ids = [c.id for c in classes]
    if len(set(ids)) != len(ids):
        raise VectorizeError(f"{where} repeats class ids: {sorted(ids)}")
    return tuple(classes)


def _read_colormap(src: Any) -> dict[int, tuple[int, int, int]] | None:
    try:
        table = src.colormap(1)
    except ValueError:  # rasterio raises ValueError when the band has no color table
        return None
    return {int(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in table.items()}


def _classes_from_tag(text: str | None, name: str) -> tuple[ClassInfo, ...] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise VectorizeError(
            f"class raster {name} has a malformed {CLASSES_TAG} tag: {first_line(exc)}"
        ) from exc
    return classes_from_records(data, f"the {CLASSES_TAG} tag of {name}")


def _classes_from_categories(
    name: str, colormap: Mapping[int, tuple[int, int, int]] | None
) -> tuple[ClassInfo, ...] | None:
    """Classes from GDAL category names stored in the PAM sidecar (``.aux.xml``), if any.

    rasterio has no API for category names; GDAL keeps them for GeoTIFFs in the sidecar as
    ``PAMRasterBand/CategoryNames/Category``, where the n-th entry names value n.
    """
    sidecar = Path(name + ".aux.xml")
    if not sidecar.is_file():
        return None
    try:
        root = ET.parse(sidecar).getroot()
    except ET.ParseError:
        return None
    band = next((b for b in root.iter("PAMRasterBand") if b.get("band", "1") == "1"), None)
    names = band.find("CategoryNames") if band is not None else None
    if names is None:
        return None
    classes = []
    for value, item in enumerate(names.iter("Category")):
        label = (item.text or "").strip()
        if label and value < NODATA:
            classes.append(ClassInfo(value, label, color_for(value, colormap)))
    return tuple(classes) or None


def color_for(value: int, colormap: Mapping[int, tuple[int, int, int]] | None) -> str:
    """``#rrggbb`` for ``value``: the color table's entry, else a fixed distinct palette color."""
    if colormap and value in colormap:
        r, g, b = colormap[value]
    else:
        # golden-angle hues give neighbouring ids clearly different colors, deterministically
        import colorsys

        rf, gf, bf = colorsys.hsv_to_rgb((value * 0.618033988749895) % 1.0, 0.65, 0.85)
        r, g, b = round(rf * 255), round(gf * 255), round(bf * 255)
    return f"#{r:02x}{g:02x}{b:02x}"
