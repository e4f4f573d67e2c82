"""Satellite products as scenes: Sentinel-2 ``.SAFE``, folders of band files, STAC items.

A Sentinel-2 ``.SAFE`` folder or zip, a folder of per-band files, or a STAC item whose assets are
local files becomes a small GDAL VRT (XML pointing at the product's own band files, no pixels
copied): one band per file, named by its band id, on the grid of the finest band (Sentinel-2's
20 m bands are resampled bilinearly onto the 10 m grid while reading), with the scale and offset
the product metadata states (``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml`` quantification value and
baseline-04.00 offsets; the STAC ``raster:bands`` scale and offset), its processing level in the
``REFLECTANCE_LEVEL`` tag, and, for L2A, a mask from the scene classification (no data, defective,
cloud shadow, medium and high cloud, cirrus masked). The rest of geoseg reads the VRT like any
scene.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from geoseg.errors import InvalidSceneError
from geoseg.io.cloud_mask import MASKED_SCL
from geoseg.io.gdal import open_raster

#: Sentinel-2 band ids in the products' own order (the ``bandId`` of their metadata).
SENTINEL2_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
REFLECTANCE_LEVEL_TAG = "REFLECTANCE_LEVEL"

_BAND_FILE = re.compile(r"(?:^|[_.-])(B(?:0?[1-9]|1[0-2]|8A))(?:_(\d+)m)?\.(?:jp2|tif|tiff)$", re.I)
_SCL_FILE = re.compile(r"_SCL_(\d+)m\.(?:jp2|tif|tiff)$", re.I)


@dataclass(frozen=True)
class BandFile:
    """One band of a product: its id, file (a GDAL name) and what its values are."""

    band: str
    path: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class Product:
    """The pieces of a product a VRT is made of."""

    name: str
    bands: list[BandFile]
    level: str | None = None  # "surface" or "toa"
    mask: str | None = None  # scene classification file
    tags: dict[str, str] = field(default_factory=dict)


def is_product(path: str) -> bool:
    """Whether ``path`` names a product rather than a raster file."""
    lower = path.lower().rstrip("/")
    if lower.endswith((".safe", ".json")) or lower.endswith(".safe.zip"):
        return True
    if lower.endswith(".zip") and Path(path).is_file():
        with zipfile.ZipFile(path) as archive:
            return any(".safe/" in n.lower() for n in archive.namelist()[:50])
    return Path(path).is_dir()


def product_dataset(path: str) -> tuple[str, str]:
    """A GDAL dataset name (a VRT) for a product, and the product's name for messages.

    Raises
    ------
    InvalidSceneError
        If the product has no band files geoseg recognises.
    """
    key = str(Path(path).resolve()) if "://" not in path else path
    if key in _CACHE:
        return _CACHE[key]
    product = _read_product(path)
    if not product.bands:
        raise InvalidSceneError(
            f"{path} holds no band files geoseg recognises (names with B02, B8A, ... or a STAC "
            "item's assets)"
        )
    vrt = _temporary_dir() / f"{_safe_name(product.name)}.vrt"
    vrt.write_text(build_vrt(product), encoding="utf-8")
    _CACHE[key] = (str(vrt), product.name)
    return _CACHE[key]


_CACHE: dict[str, tuple[str, str]] = {}
_TEMPORARY: list[Path] = []


def _temporary_dir() -> Path:
    if not _TEMPORARY:
        folder = Path(tempfile.mkdtemp(prefix="geoseg-products-"))
        _TEMPORARY.append(folder)
        atexit.register(shutil.rmtree, folder, True)
    return _TEMPORARY[0]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "product"


def _read_product(path: str) -> Product:
    lower = path.lower().rstrip("/")
    if lower.endswith(".json"):
        return _stac_item(Path(path))
    if lower.endswith(".zip"):
        return _safe_zip(Path(path))
    return _folder(Path(path))


def _folder(root: Path) -> Product:
    """A ``.SAFE`` folder or any folder of per-band files."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    names = [str(p.relative_to(root)) for p in files]
    product = _from_names(root.name, names, lambda n: str(root / n))
    metadata = [p for p in files if re.fullmatch(r"MTD_MSIL(1C|2A)\.xml", p.name)]
    if metadata:
        _apply_sentinel2_metadata(product, metadata[0].read_text(encoding="utf-8"))
    return product


def _safe_zip(archive: Path) -> Product:
    with zipfile.ZipFile(archive) as handle:
        names = handle.namelist()
        metadata = [n for n in names if re.search(r"(^|/)MTD_MSIL(1C|2A)\.xml$", n)]
        text = handle.read(metadata[0]).decode("utf-8") if metadata else None
    product = _from_names(
        archive.name.removesuffix(".zip"), names, lambda n: f"/vsizip/{archive}/{n}"
    )
    if text is not None:
        _apply_sentinel2_metadata(product, text)
    return product


def _from_names(name: str, names: list[str], gdal_name: Any) -> Product:
    """Band files among ``names``: the finest resolution of each band, and the L2A SCL."""
    best: dict[str, tuple[int, str]] = {}
    mask: tuple[int, str] | None = None
    for item in names:
        if "QI_DATA" in item or "/PVI" in item or "_TCI" in item.upper():
            continue
        scl = _SCL_FILE.search(item)
        if scl:
            resolution = int(scl.group(1))
            if mask is None or resolution < mask[0]:
                mask = (resolution, item)
            continue
        match = _BAND_FILE.search(item)
        if not match:
            continue
        band = _band_id(match.group(1))
        resolution = int(match.group(2)) if match.group(2) else 0
        if band not in best or resolution < best[band][0]:
            best[band] = (resolution, item)
    bands = [BandFile(b, gdal_name(best[b][1])) for b in SENTINEL2_BANDS if b in best]
    level = "surface" if ".SAFE" in name.upper() and "MSIL2A" in name.upper() else None
    if level is None and "MSIL1C" in name.upper():
        level = "toa"
    return Product(name, bands, level, gdal_name(mask[1]) if mask else None)


def _band_id(text: str) -> str:
    text = text.upper()
    return text if text == "B8A" else f"B{int(text[1:]):02d}"


def _apply_sentinel2_metadata(product: Product, text: str) -> None:
    """Scale, offsets and level from ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``."""
    root = ElementTree.fromstring(text)
    values = {el.tag.rsplit("}", 1)[-1]: (el.text or "").strip() for el in root.iter()}
    quantification = values.get("BOA_QUANTIFICATION_VALUE") or values.get("QUANTIFICATION_VALUE")
    scale = 1.0 / float(quantification) if quantification else 1e-4
    offsets: dict[str, float] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and element.get("band_id") is not None:
            band = SENTINEL2_BANDS[int(element.get("band_id", "0"))]
            offsets[band] = float(element.text or 0) * scale
    product.bands = [
        BandFile(b.band, b.path, scale, offsets.get(b.band, 0.0)) for b in product.bands
    ]
    product.level = "surface" if "BOA_QUANTIFICATION_VALUE" in values else "toa"
    baseline = values.get("PROCESSING_BASELINE")
    if baseline:
        product.tags["PROCESSING_BASELINE"] = baseline


def _stac_item(path: Path) -> Product:
    """A STAC item whose assets are local files (hrefs relative to the item or absolute)."""
    try:
        item = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidSceneError(f"{path} is not a readable STAC item: {exc}") from exc
    assets = item.get("assets", {}) if isinstance(item, dict) else {}
    bands: list[BandFile] = []
    mask = None
    for key, asset in assets.items():
        href = str(asset.get("href", ""))
        if "://" in href and not href.startswith("file://"):
            continue  # geoseg reads local files only
        local = href.removeprefix("file://")
        file = local if Path(local).is_absolute() else str(path.parent / local)
        if key.upper() == "SCL":
            mask = file
            continue
        names = [b.get("name", "") for b in asset.get("eo:bands", [])] or [key]
        match = re.fullmatch(r"B(0?[1-9]|1[0-2]|8A)", str(names[0]).upper())
        common = [b.get("common_name") for b in asset.get("eo:bands", [])]
        if not match and not (common and common[0]):
            continue
        band = _band_id(f"B{match.group(1)}") if match else str(common[0])
        raster = (asset.get("raster:bands") or [{}])[0]
        bands.append(
            BandFile(band, file, float(raster.get("scale", 1.0)), float(raster.get("offset", 0.0)))
        )
    order = {b: i for i, b in enumerate(SENTINEL2_BANDS)}
    bands.sort(key=lambda b: order.get(b.band, len(order)))
    collection = str(item.get("collection", "")).lower() if isinstance(item, dict) else ""
    level = "surface" if re.search(r"l2a|l2|sr\b", collection) else None
    if level is None and re.search(r"l1c|l1\b", collection):
        level = "toa"
    return Product(str(item.get("id", path.stem)), bands, level, mask)


def build_vrt(product: Product) -> str:
    """The VRT of a product: its bands on the finest band's grid, scale, offset, level, mask."""
    grids = {}
    for band in product.bands:
        with open_raster(band.path) as src:
            grids[band.band] = (src.transform, src.width, src.height, src.crs, src.dtypes[0])
    reference = min(grids.values(), key=lambda g: abs(g[0].a))
    transform, width, height, crs, _ = reference
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")
    lines.append(
        "  <GeoTransform>"
        + ", ".join(repr(v) for v in (transform.c, transform.a, 0.0, transform.f, 0.0, transform.e))
        + "</GeoTransform>"
    )
    tags = dict(product.tags)
    if product.level:
        tags[REFLECTANCE_LEVEL_TAG] = product.level
    if tags:
        lines.append("  <Metadata>")
        lines += [f'    <MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in tags.items()]
        lines.append("  </Metadata>")
    dtype = {"uint16": "UInt16", "int16": "Int16", "uint8": "Byte", "float32": "Float32"}
    for index, band in enumerate(product.bands, start=1):
        src_transform, src_width, src_height, _, src_dtype = grids[band.band]
        lines.append(
            f'  <VRTRasterBand dataType="{dtype.get(src_dtype, "Float32")}" band="{index}">'
        )
        lines.append(f"    <Description>{band.band}</Description>")
        if band.scale != 1.0 or band.offset != 0.0:
            lines.append(f"    <Offset>{band.offset!r}</Offset>")
            lines.append(f"    <Scale>{band.scale!r}</Scale>")
        lines.append(
            _source("SimpleSource", band.path, src_transform, src_width, src_height, reference)
        )
        lines.append("  </VRTRasterBand>")
    if product.mask is not None:
        with open_raster(product.mask) as src:
            mask_grid = (src.transform, src.width, src.height)
        lut = ",".join(f"{v}:{0 if v in MASKED_SCL else 255}" for v in range(256))
        lines.append("  <MaskBand>")
        lines.append('    <VRTRasterBand dataType="Byte">')
        lines.append(
            _source(
                "ComplexSource", product.mask, *mask_grid, reference, f"<LUT>{lut}</LUT>", "nearest"
            )
        )
        lines.append("    </VRTRasterBand>")
        lines.append("  </MaskBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def _source(
    kind: str,
    path: str,
    transform: Any,
    width: int,
    height: int,
    reference: tuple[Any, ...],
    extra: str = "",
    resampling: str = "bilinear",
) -> str:
    """A VRT source placing a file on the reference grid (by its georeference)."""
    ref_transform = reference[0]
    x_off = (transform.c - ref_transform.c) / ref_transform.a
    y_off = (transform.f - ref_transform.f) / ref_transform.e
    x_size = width * transform.a / ref_transform.a
    y_size = height * transform.e / ref_transform.e
    return (
        f'    <{kind} resampling="{resampling}">'
        f'<SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
        "<SourceBand>1</SourceBand>"
        f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
        f'<DstRect xOff="{x_off!r}" yOff="{y_off!r}" xSize="{x_size!r}" ySize="{y_size!r}"/>'
        f"{extra}</{kind}>"
    )
