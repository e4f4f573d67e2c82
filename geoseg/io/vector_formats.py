"""The polygon formats ``--out`` accepts, chosen by extension, and the export from the GeoPackage.

The land-cover layer is always built as a GeoPackage (streamed, styled in ``layer_styles``); other
formats are exported from it at the end, with the same style beside them as a ``.qml`` file,
which QGIS applies when it opens a layer of the same name. Every file of the export is written
under a temporary name and renamed by the caller with the rest of the run's outputs.
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

from geoseg.errors import OutputError
from geoseg.io.geopackage import read_default_style

#: Extension -> OGR driver of the formats ``--out`` writes.
FORMATS = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".fgb": "FlatGeobuf",
}
_SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def check_vector_format(path: Path) -> str:
    """The OGR driver for ``path``'s extension.

    Raises
    ------
    OutputError
        If the extension is not one geoseg writes; the message lists those it does.
    """
    if path.is_dir():
        raise OutputError(f"output {path} is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    known = ", ".join(FORMATS)
    if suffix in (".parquet", ".geoparquet"):
        raise OutputError(
            f"output {path}: GeoParquet needs pyarrow, which geoseg does not install; write one of "
            f"{known} (FlatGeobuf is as fast to read)"
        )
    raise OutputError(f"output {path}: unknown format {suffix or '(no extension)'}; use {known}")


def output_files(path: Path) -> list[Path]:
    """Every file an output at ``path`` consists of (a shapefile's parts, the style beside)."""
    if path.suffix.lower() == ".gpkg":
        return [path]
    parts = _SHAPEFILE_PARTS if path.suffix.lower() == ".shp" else (path.suffix,)
    return [path.with_suffix(p) for p in parts] + [path.with_suffix(".qml")]


def export_layer(gpkg: Path, out: Path, layer: str = "landcover") -> list[tuple[Path, Path]]:
    """Write ``layer`` of ``gpkg`` in ``out``'s format under temporary names.

    Returns
    -------
    list of (temporary, final) paths
        To rename once every output of the run is complete.
    """
    import pyogrio

    driver = check_vector_format(out)
    tag = f".{out.stem}.export-{uuid.uuid4().hex[:8]}"
    target = out.with_name(tag + out.suffix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # driver notices (field name lengths ...) are not news
        frame = pyogrio.read_dataframe(gpkg, layer=layer)
        options = {"ENCODING": "UTF-8"} if driver == "ESRI Shapefile" else {}
        pyogrio.write_dataframe(frame, target, driver=driver, layer=out.stem, **options)
    pairs = [
        (target.with_suffix(part.suffix), part)
        for part in output_files(out)
        if part.suffix != ".qml" and target.with_suffix(part.suffix).exists()
    ]
    style = read_default_style(gpkg, layer)
    if style is not None and style.get("styleQML"):
        qml = target.with_suffix(".qml")
        qml.write_text(str(style["styleQML"]), encoding="utf-8")
        pairs.append((qml, out.with_suffix(".qml")))
    return pairs
