"""Files a batch writes besides each scene's outputs: reports, a merged GeoPackage, housekeeping.

All of them are written to a temporary sibling and renamed into place (:func:`atomic_output`).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.core import LAYER
from geoseg.errors import BatchError, OutputError
from geoseg.io.atomic import atomic_output, remove_with_sidecars
from geoseg.io.geopackage import add_default_style, read_default_style
from geoseg.io.report_files import write_json as write_report_json
from geoseg.styles import LayerStyle

log = logging.getLogger(__name__)

#: CRS of a merged layer whose scenes are in different CRSs (a layer holds one CRS).
COMMON_CRS = "EPSG:4326"

# Names made by geoseg.io.atomic.temporary_sibling: ".NAME.TAG-8hex[.suffix]" (+ GDAL sidecars)
_TEMPORARY = re.compile(
    r"^\..+\.[A-Za-z_]+-[0-9a-f]{8}(\.[A-Za-z0-9]+)?(\.aux\.xml|\.ovr|-journal|-wal|-shm)?$"
)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporaries that a killed process left in ``folder`` (recursively).

    An interrupted :func:`geoseg.pipeline.predict` cleans up after itself, but a process killed
    outright (out of memory, ``kill -9``, a lost machine) cannot. Returns how many were removed.
    Only call this while no batch is writing to ``folder``.
    """
    removed = 0
    for path in sorted(folder.rglob(".*")):
        if path.is_file() and _TEMPORARY.match(path.name):
            remove_with_sidecars(path)
            removed += 1
    if removed:
        log.info("removed %d temporary files left by killed workers in %s", removed, folder)
    return removed


def class_areas(gpkg: Path, layer: str = LAYER) -> dict[str, float]:
    """Total polygon area (m2) per class name in a land-cover GeoPackage.

    Raises
    ------
    OutputError
        If the GeoPackage cannot be read.
    """
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        frame = pyogrio.read_dataframe(
            gpkg, layer=layer, columns=["class_name", "area_m2"], read_geometry=False
        )
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise OutputError(f"cannot read GeoPackage {gpkg}: {exc}") from exc
    sums = frame.groupby("class_name")["area_m2"].sum()
    return {str(k): float(v) for k, v in sums.items()}


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically, replacing ``path``."""
    write_report_json(path, data, overwrite=True)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV with a header of ``columns``, atomically, replacing ``path``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(buffer.getvalue(), newline="")


@dataclass(frozen=True)
class MergeResult:
    """A merged GeoPackage.

    Parameters
    ----------
    path : Path
        The file.
    features : int
        Polygons written.
    crs : str or None
        CRS of the layer.
    reprojected : bool
        Whether scenes in different CRSs were reprojected to :data:`COMMON_CRS`.
    """

    path: Path
    features: int
    crs: str | None
    reprojected: bool


def merge_landcover(scenes: Sequence[tuple[str, Path]], out: Path) -> MergeResult:
    """Merge the ``landcover`` layers of many GeoPackages into one, with a ``scene`` field.

    Scenes are appended one at a time, so memory holds one scene's polygons. A layer has one
    CRS: when the scenes' CRSs differ, polygons are reprojected to :data:`COMMON_CRS` (with a
    warning; ``area_m2`` keeps the ground areas computed per scene). The style of the first
    scene becomes the default style.

    Parameters
    ----------
    scenes : sequence of (str, Path)
        Scene name and its GeoPackage, in the order to write them.
    out : Path
        The merged GeoPackage, replaced if it exists.

    Raises
    ------
    BatchError
        If there is nothing to merge.
    OutputError
        If a GeoPackage cannot be read or the merged file cannot be written.
    """
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    if not scenes:
        raise BatchError("no scene succeeded: there is nothing to merge")
    try:
        crss = {str(pyogrio.read_info(path, layer=LAYER)["crs"]) for _, path in scenes}
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise OutputError(f"cannot read a scene GeoPackage to merge: {exc}") from exc
    reproject = len(crss) > 1
    if reproject:
        log.warning(
            "scenes are in %d different CRSs; the merged layer is reprojected to %s",
            len(crss),
            COMMON_CRS,
        )
    style_row = read_default_style(scenes[0][1], LAYER)
    features = 0
    crs: str | None = None
    with atomic_output(out, overwrite=True) as tmp:
        try:
            for index, (name, path) in enumerate(scenes):
                frame = pyogrio.read_dataframe(path, layer=LAYER)
                if reproject:
                    frame = frame.to_crs(COMMON_CRS)
                frame.insert(0, "scene", name)
                crs = str(frame.crs) if frame.crs is not None else None
                pyogrio.write_dataframe(
                    frame,
                    tmp,
                    layer=LAYER,
                    driver="GPKG",
                    geometry_type="Polygon",
                    append=index > 0,
                    promote_to_multi=False,
                    dataset_options={"VERSION": "1.2"} if index == 0 else None,
                    layer_options={"GEOMETRY_NAME": "geom", "SPATIAL_INDEX": "YES"}
                    if index == 0
                    else None,
                )
                features += len(frame)
            if style_row is not None:
                add_default_style(
                    tmp,
                    LAYER,
                    LayerStyle(
                        name=str(style_row["styleName"]),
                        qml=str(style_row["styleQML"]),
                        sld=str(style_row["styleSLD"] or ""),
                        description=str(style_row["description"] or ""),
                    ),
                )
        except (DataSourceError, DataLayerError, OSError) as exc:
            raise OutputError(f"cannot write merged GeoPackage {out}: {exc}") from exc
    return MergeResult(out, features, crs, reproject)
