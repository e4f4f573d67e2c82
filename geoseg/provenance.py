"""Provenance recorded in every output: which model, which geoseg, which input, which settings."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from geoseg import __version__


@dataclass(frozen=True)
class Provenance:
    """Where an output came from.

    Parameters
    ----------
    model_name, model_sha256 : str
        The model used and the checksum of its file.
    input_path : str
        The scene (or class raster) the output was made from.
    parameters : Mapping[str, Any]
        Settings that change the result (tile size, overlap, min area ...).
    geoseg_version : str
        Version of geoseg that made the output.
    created : str
        ISO 8601 UTC time of the run.
    """

    model_name: str
    model_sha256: str
    input_path: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    geoseg_version: str = __version__
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        data = asdict(self)
        data["parameters"] = dict(self.parameters)
        return data

    def to_json(self) -> str:
        """Compact JSON, as stored in GeoTIFF tags and GeoPackage metadata."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)
