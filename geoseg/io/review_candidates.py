"""Reading a land-cover GeoPackage's polygons for review ranking (:mod:`geoseg.review`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geoseg.errors import InvalidSceneError, OutputError


def read_review_candidates(path: str | Path, layer: str = "landcover") -> dict[str, Any]:
    """The columns ranking needs: fid, class_name, area_m2, confidence, reviewed, inner points.

    Raises
    ------
    InvalidSceneError
        If the file or layer cannot be read.
    OutputError
        If the layer has no ``confidence`` (a map predicted without ``--confidence``).
    """
    import pyogrio
    import shapely

    try:
        frame = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    except Exception as exc:  # pyogrio raises its own DataSourceError and friends
        text = str(exc).strip().splitlines()
        raise InvalidSceneError(
            f"cannot read layer {layer!r} of {path}: {text[0] if text else type(exc).__name__}"
        ) from exc
    if "confidence" not in frame.columns:
        raise OutputError(
            f"{path} has no confidence field: predict with --confidence to rank polygons"
        )
    inside = shapely.point_on_surface(frame.geometry.to_numpy())
    points = np.column_stack([shapely.get_x(inside), shapely.get_y(inside)])
    reviewed = (
        frame["reviewed"].fillna(False).astype(bool).to_numpy()
        if "reviewed" in frame.columns
        else np.zeros(len(frame), bool)
    )
    return {
        "fids": frame.index.to_numpy(),
        "class_names": frame["class_name"].astype(str).to_numpy(),
        "areas_m2": frame["area_m2"].to_numpy(dtype=np.float64),
        "confidences": frame["confidence"].to_numpy(dtype=np.float64, na_value=np.nan),
        "reviewed": reviewed,
        "points": points,
    }
