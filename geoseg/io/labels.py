"""Reading training data: label rasters, label polygons, teacher probabilities and band stacks.

Everything here puts data onto one *image grid* (a :class:`~geoseg.core.Grid`: CRS, transform,
width, height), the grid of the scene the labels describe, so training code only ever handles
aligned arrays. Reading through a ``WarpedVRT`` lets labels in another CRS or resolution line up
without a temporary file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds

from geoseg.core import NODATA, Grid
from geoseg.errors import InvalidSceneError, LabelError
from geoseg.io.atomic import atomic_output
from geoseg.io.gdal import warped_to_grid
from geoseg.io.scene import valid_from

IGNORE = NODATA
"""Label value of pixels that carry no label (ignored by losses and metrics)."""

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".zip")


def grid_of(path: str | Path) -> Grid:
    """The grid of a raster file.

    Raises
    ------
    InvalidSceneError
        If the file cannot be opened or has no CRS.
    """
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InvalidSceneError(f"raster {path} has no CRS")
            return Grid(src.crs, src.transform, src.width, src.height)
    except RasterioError as exc:
        raise InvalidSceneError(f"cannot open raster {path}: {exc}") from exc


def is_vector(path: str | Path) -> bool:
    """Whether ``path`` names a vector file (by suffix)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def _check_overlap(what: str, crs: CRS | None, bounds: tuple[float, ...], grid: Grid) -> None:
    if crs is None:
        raise LabelError(f"labels {what} have no CRS: assign one so they can be placed")
    try:
        left, bottom, right, top = transform_bounds(crs, grid.crs, *bounds, densify_pts=21)
    except Exception as exc:  # pyproj raises several types for impossible transforms
        raise LabelError(f"labels {what} cannot be transformed to the image CRS: {exc}") from exc
    g_left, g_bottom, g_right, g_top = grid.bounds
    finite = all(math.isfinite(v) for v in (left, bottom, right, top))
    if not finite or left >= g_right or right <= g_left or bottom >= g_top or top <= g_bottom:
        raise LabelError(
            f"labels {what} do not overlap the image (labels span "
            f"{tuple(round(float(v), 3) for v in bounds)} in {crs}, the image "
            f"spans {tuple(round(v, 3) for v in grid.bounds)} in {grid.crs}): check the CRS"
        )


def read_class_raster(path: str | Path, grid: Grid) -> np.ndarray:
    """Read a single-band class raster onto ``grid`` (nearest neighbour).

    Pixels outside the label raster, or at its nodata value, become :data:`IGNORE`.

    Raises
    ------
    LabelError
        If the file cannot be read, has no CRS, or does not overlap the grid.
    """
    try:
        with rasterio.open(path) as src:
            _check_overlap(str(path), src.crs, tuple(src.bounds), grid)
            with warped_to_grid(
                src,
                grid,
                Resampling.nearest,
                nodata=src.nodata if src.nodata is not None else IGNORE,
            ) as vrt:
                data = vrt.read(1)
                valid = vrt.read_masks(1) > 0
    except RasterioError as exc:
        raise LabelError(f"cannot read labels {path}: {exc}") from exc
    out = np.full(data.shape, IGNORE, dtype=np.int64)
    out[valid] = data[valid]
    return out


def read_probabilities(path: str | Path, grid: Grid, scale: float = 255.0) -> np.ndarray:
    """Read a multi-band class-probability raster onto ``grid`` (bilinear), as float32 in 0-1.

    Raises
    ------
    LabelError
        If the file cannot be read or does not overlap the grid.
    """
    try:
        with rasterio.open(path) as src:
            _check_overlap(str(path), src.crs, tuple(src.bounds), grid)
            with warped_to_grid(src, grid, Resampling.bilinear) as vrt:
                data: np.ndarray = vrt.read().astype(np.float32)
    except RasterioError as exc:
        raise LabelError(f"cannot read probabilities {path}: {exc}") from exc
    data /= scale
    return data


#: Attribute names that hold a polygon's class, in the order they are preferred.
CLASS_COLUMNS = ("class", "label", "class_name", "classname", "landcover", "land_cover", "lc")


def label_column_of(path: str | Path, layer: str | None = None) -> str:
    """The attribute of label polygons that holds their class, where the file leaves no doubt.

    A column named as :data:`CLASS_COLUMNS` are (any case), else the only attribute there is.

    Raises
    ------
    LabelError
        If the file cannot be read, or it has several attributes and none of those names.
    """
    import pyogrio

    try:
        if layer is None:
            spatial = [name for name, kind in pyogrio.list_layers(path) if kind]
            layer = spatial[0] if spatial else None
        fields = [str(f) for f in pyogrio.read_info(path, layer=layer)["fields"]]
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        raise LabelError(f"cannot read label polygons {path}: {exc}") from exc
    by_lower = {f.lower(): f for f in fields}
    for name in CLASS_COLUMNS:
        if name in by_lower:
            return by_lower[name]
    if len(fields) == 1:
        return fields[0]
    raise LabelError(
        f"label polygons {path}: say which column holds the class with --label-column "
        f"(columns: {', '.join(fields) or 'none'})"
    )


def rasterize_polygons(
    path: str | Path,
    column: str,
    grid: Grid,
    layer: str | None = None,
    where: str | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Burn labelled polygons onto ``grid``.

    Parameters
    ----------
    path : str or Path
        A GeoPackage, shapefile or other vector file OGR reads.
    column : str
        Attribute holding each polygon's class (a name or a number).
    grid : Grid
        Target grid; polygons are reprojected to its CRS.
    layer : str, optional
        Layer name for multi-layer files (default: the first layer with geometries).
    where : str, optional
        A boolean attribute: only polygons where it is true are burnt (``reviewed``, the
        field an analyst ticks in a geoseg GeoPackage after checking a polygon).

    Returns
    -------
    codes : np.ndarray
        ``(height, width)`` int64: index into ``values`` where a polygon covers the pixel centre,
        :data:`IGNORE` elsewhere (unlabelled).
    values : tuple of str
        The distinct class values of ``column``, sorted, as text.

    Raises
    ------
    LabelError
        If the file cannot be read, the column is missing, the polygons lie outside the image or
        no pixel centre falls in any polygon.
    """
    import geopandas as gpd
    from rasterio.features import rasterize

    try:
        if layer is None:
            import pyogrio

            spatial = [name for name, kind in pyogrio.list_layers(path) if kind]
            layer = spatial[0] if spatial else None
        frame = gpd.read_file(path, layer=layer)
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        raise LabelError(f"cannot read label polygons {path}: {exc}") from exc
    if column not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c != frame.geometry.name)
        raise LabelError(
            f"label polygons {path} have no column {column!r}; columns are: {columns or 'none'}"
        )
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if frame.empty:
        raise LabelError(f"label polygons {path} hold no geometry")
    if where is not None:
        if where not in frame.columns:
            raise LabelError(f"label polygons {path} have no column {where!r} to filter on")
        frame = frame[frame[where].fillna(False).astype(bool)]
        if frame.empty:
            raise LabelError(f"no polygon of {path} has {where} set: nothing to train on")
    _check_overlap(str(path), frame.crs, tuple(frame.total_bounds), grid)
    frame = frame.to_crs(grid.crs)
    values = tuple(sorted({str(v) for v in frame[column]}))
    index = {v: i for i, v in enumerate(values)}
    shapes = ((geom, index[str(v)]) for geom, v in zip(frame.geometry, frame[column], strict=True))
    codes = rasterize(
        shapes,
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        fill=IGNORE,
        dtype="uint8",
    ).astype(np.int64)
    if not np.any(codes != IGNORE):
        raise LabelError(
            f"label polygons {path} cover no pixel centre of the image: are they too small?"
        )
    return codes, values


def stack_bands(
    sources: Sequence[tuple[str | Path, int]],
    out: str | Path,
    descriptions: Sequence[str],
    resampling: str = "bilinear",
) -> Grid:
    """Write a multi-band GeoTIFF from bands of several files, on the first source's grid.

    Bands on other grids (e.g. Sentinel-2's 20 m bands beside its 10 m ones) are resampled onto
    the first band's grid, so a per-band product becomes one scene prediction can read.

    Parameters
    ----------
    sources : sequence of (path, band)
        Each output band's file and 1-based band index.
    out : str or Path
        Output GeoTIFF, replaced if it exists.
    descriptions : sequence of str
        Output band descriptions (STAC common names).
    resampling : str
        Rasterio resampling name for bands on another grid.

    Returns
    -------
    Grid
        The grid of the stack.
    """
    grid = grid_of(sources[0][0])
    bands = []
    dtype: Any = None
    for path, band in sources:
        with (
            rasterio.open(path) as src,
            warped_to_grid(src, grid, Resampling[resampling]) as vrt,
        ):
            bands.append(vrt.read(band))
            dtype = dtype or src.dtypes[band - 1]
    write_raster(out, np.stack(bands), grid, descriptions=descriptions)
    return grid


def resample_raster(source: str | Path, out: str | Path, factor: float) -> Grid:
    """Write ``source`` with pixels ``factor`` times larger (nearest neighbour), keeping its tags.

    Nearest neighbour keeps fill pixels (0 in every band) and nodata exactly where they were,
    and band descriptions, scales and offsets carry over, so the copy says what the original
    says about its values.
    """
    with rasterio.open(source) as src:
        grid = Grid(src.crs, src.transform, src.width, src.height).resampled(factor)
        with warped_to_grid(src, grid, Resampling.nearest, nodata=src.nodata) as vrt:
            data = vrt.read()
        descriptions = [d or "" for d in src.descriptions]
        scales, offsets, nodata = src.scales, src.offsets, src.nodata
    write_raster(out, data, grid, nodata=nodata, descriptions=descriptions)
    with rasterio.open(out, "r+") as dst:
        dst.scales, dst.offsets = scales, offsets
    return grid


def write_raster(
    path: str | Path,
    data: np.ndarray,
    grid: Grid,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
) -> None:
    """Write a ``(bands, H, W)`` array as a tiled, compressed GeoTIFF (atomically)."""
    profile: Mapping[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with (
        atomic_output(Path(path), overwrite=True) as tmp,
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        dst.write(data)
        if descriptions:
            for i, text in enumerate(descriptions, start=1):
                dst.set_band_description(i, text)


def read_raster(path: str | Path, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Read whole bands of a raster with its validity mask.

    Returns
    -------
    data : np.ndarray
        ``(len(bands), H, W)`` raw values.
    valid : np.ndarray
        ``(H, W)`` boolean, true where every band is valid.
    """
    with rasterio.open(path) as src:
        data = src.read(list(bands))
        masks = src.read_masks(list(bands))
    return data, valid_from(data, masks)
