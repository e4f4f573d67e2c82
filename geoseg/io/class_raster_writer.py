"""Writing the class raster: streamed to a tiled GeoTIFF as tile rows complete, then a COG.

The class raster is uint8 on the scene's exact grid (CRS, transform, width, height), nodata 255,
with a color table, the classes as JSON in the ``GEOSEG_CLASSES`` tag and provenance in
``GEOSEG_PROVENANCE``. Category names go to a ``.aux.xml`` sidecar, where GDAL and QGIS read them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.windows import Window

from geoseg.core import CLASSES_TAG, NODATA, PROVENANCE_TAG, ClassInfo, Grid
from geoseg.io.cloud_mask import cloud_source
from geoseg.io.gdal import open_raster, warped_to_grid
from geoseg.io.scene import Scene, valid_from
from geoseg.io.scene_reader import GDAL_READ_OPTIONS, scene_grid
from geoseg.stitching import Patch
from geoseg.styles import qml_paletted
from geoseg.tiling import Span

#: Pixels counted at a time: their int64 widening (8 MB) comes from the heap, reused.
_COUNT_PIECE = 1 << 20


def classes_json(classes: tuple[ClassInfo, ...]) -> str:
    """The ``GEOSEG_CLASSES`` tag value."""
    return json.dumps([{"id": c.id, "name": c.name, "color": c.color} for c in classes])


class ClassRasterWriter:
    """Stream class patches into a tiled GeoTIFF and count class pixels as they pass.

    Parameters
    ----------
    path : Path
        A temporary path (the pipeline renames finished outputs into place).
    grid : Grid
        The grid to write (the scene's, or the model's when the scene is resampled).
    classes : tuple of ClassInfo
        Classes, for the color table and tags.
    provenance : str, optional
        Provenance JSON for the ``GEOSEG_PROVENANCE`` tag.
    """

    def __init__(
        self,
        path: Path,
        grid: Grid,
        classes: tuple[ClassInfo, ...],
        provenance: str | None = None,
    ) -> None:
        self.path = path
        self.grid = grid
        self.classes = classes
        self.provenance = provenance
        self.counts = np.zeros(256, dtype=np.int64)
        self.busy_seconds = 0.0
        self._dataset: Any = None

    def _profile(self) -> dict[str, Any]:
        """A tiled, compressed uint8 GeoTIFF on the grid, nodata 255."""
        return {
            "driver": "GTiff",
            "width": self.grid.width,
            "height": self.grid.height,
            "count": 1,
            "dtype": "uint8",
            "crs": self.grid.crs,
            "transform": self.grid.transform,
            "nodata": NODATA,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }

    def __enter__(self) -> ClassRasterWriter:
        self._dataset = rasterio.open(self.path, "w", **self._profile())
        self._dataset.write_colormap(1, colormap(self.classes))
        self._dataset.set_band_description(1, "land cover class")
        tags = {CLASSES_TAG: classes_json(self.classes)}
        if self.provenance:
            tags[PROVENANCE_TAG] = self.provenance
        self._dataset.update_tags(**tags)
        return self

    def write(self, patch: Patch) -> None:
        """Write one patch of class ids."""
        t0 = time.perf_counter()
        window = Window(patch.cols.start, patch.rows.start, patch.cols.size, patch.rows.size)
        self._dataset.write(patch.data, 1, window=window)
        flat = patch.data.ravel()
        # in pieces: bincount widens to int64, and a row of a wide scene at once would be a
        # fresh allocation of 8 bytes a pixel, page-faulted in for every row
        for start in range(0, flat.size, _COUNT_PIECE):
            self.counts += np.bincount(flat[start : start + _COUNT_PIECE], minlength=256)
        self.busy_seconds += time.perf_counter() - t0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._dataset.close()

    @property
    def valid_pixels(self) -> int:
        """Pixels written with a class (not nodata)."""
        return int(self.counts[:NODATA].sum())


class ConfidenceRasterWriter(ClassRasterWriter):
    """Stream confidence patches (uint8 percent, nodata 255) into a tiled GeoTIFF.

    ``counts`` is the histogram of confidence values, for the run report.
    """

    def __init__(self, path: Path, grid: Grid, provenance: str | None = None) -> None:
        super().__init__(path, grid, (), provenance)

    def __enter__(self) -> ConfidenceRasterWriter:
        # smooth values: horizontal differencing compresses them better
        self._dataset = rasterio.open(self.path, "w", **self._profile(), predictor=2)
        self._dataset.set_band_description(1, "confidence: probability of the mapped class, %")
        if self.provenance:
            self._dataset.update_tags(**{PROVENANCE_TAG: self.provenance})
        self._dataset.update_tags(1, UNITS="percent")
        return self


def colormap(classes: tuple[ClassInfo, ...]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL color table: class colors, nodata transparent."""
    table = {c.id: (*c.rgb, 255) for c in classes}
    table[NODATA] = (0, 0, 0, 0)
    return table


def write_cog(src: Path, dst: Path, classes: tuple[ClassInfo, ...]) -> None:
    """Copy a class GeoTIFF to a Cloud-Optimized GeoTIFF with mode-resampled overviews.

    Mode keeps overview pixels real class ids (averaging would invent classes). Category names
    are written to ``dst``'s ``.aux.xml`` sidecar.
    """
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        rasterio.shutil.copy(
            src,
            dst,
            driver="COG",
            COMPRESS="DEFLATE",
            BLOCKSIZE=512,
            OVERVIEW_RESAMPLING="MODE",
            BIGTIFF="IF_SAFER",
            NUM_THREADS="ALL_CPUS",
        )


def category_names_xml(classes: tuple[ClassInfo, ...]) -> str:
    """PAM ``.aux.xml`` text naming each class value (GDAL category names, read by QGIS)."""
    names = {c.id: c.name for c in classes}
    top = max(names) if names else -1
    categories = "".join(
        f"      <Category>{escape(names.get(i, ''))}</Category>\n" for i in range(top + 1)
    )
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n'
        f"{categories}    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )


def raster_sidecars(raster: Path, classes: tuple[ClassInfo, ...]) -> dict[Path, str]:
    """The files a class raster has beside it, with their text.

    ``NAME.tif.aux.xml`` names each class value (GDAL category names) and ``NAME.qml`` is the
    raster's QGIS default style.
    """
    return {
        raster.with_name(raster.name + ".aux.xml"): category_names_xml(classes),
        raster.with_suffix(".qml"): qml_paletted(classes),
    }


def warp_to_scene(
    src: Path,
    scene: Scene,
    bands: tuple[int, ...],
    writer: ClassRasterWriter,
    rows: int = 512,
    mask: bool = True,
) -> None:
    """Bring a class raster on a resampled grid back onto the scene's own grid.

    Nearest-neighbour keeps class ids; with ``mask`` the scene's own mask is applied at full
    resolution, so the nodata edge is exact whatever the model's ground sample distance (a
    multi-date map, valid wherever any date is, goes without).
    """
    step = max(rows, scene.block_shape[0])
    with (
        rasterio.Env(**GDAL_READ_OPTIONS),
        open_raster(str(src)) as classes_src,
        warped_to_grid(classes_src, scene_grid(scene), Resampling.nearest, nodata=NODATA) as vrt,
        open_raster(scene.path) as scene_src,
        cloud_source(scene.cloud_mask) as clouds,
    ):
        for span in _row_spans(scene.height, step):
            window = Window(0, span.start, scene.width, span.size)
            classes = vrt.read(1, window=window)
            if mask:
                data = scene_src.read(list(bands), window=window)
                masks = scene_src.read_masks(list(bands), window=window)
                classes[~(valid_from(data, masks) & clouds.clear(window))] = NODATA
            writer.write(Patch(span, Span(0, scene.width), classes))


def _row_spans(height: int, step: int) -> Iterator[Span]:
    for start in range(0, height, step):
        yield Span(start, min(start + step, height))
