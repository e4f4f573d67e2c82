"""Run report: JSON with class areas, counts and timings, and a quicklook PNG with a legend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from class_raster_helpers import blocky_labels, write_class_raster

from geoseg.errors import OutputError
from geoseg.models.card import LANDCOVER_CLASSES
from geoseg.provenance import Provenance
from geoseg.report import report_paths, write_run_report
from geoseg.vectorize import vectorize_raster

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_report_beside_the_geopackage(tmp_path: Path) -> None:
    raster = write_class_raster(tmp_path / "classes.tif", blocky_labels(2))
    result = vectorize_raster(raster, tmp_path / "landcover.gpkg")
    prov = Provenance("m", "s" * 64, "scene.tif")
    report = write_run_report(
        tmp_path / "landcover.gpkg",
        raster,
        result,
        {"inference": 2.5, "vectorize": result.timings_s["total"]},
        provenance=prov,
    )
    assert (report.json_path, report.quicklook_path) == report_paths(tmp_path / "landcover.gpkg")
    data = json.loads(report.json_path.read_text())
    assert [c["name"] for c in data["classes"]] == [c.name for c in LANDCOVER_CLASSES]
    assert sum(c["area_percent"] for c in data["classes"]) == pytest.approx(100.0)
    assert sum(c["area_m2"] for c in data["classes"]) == pytest.approx(result.total_area_m2)
    assert sum(c["polygons"] for c in data["classes"]) == result.polygon_count
    assert data["timings_s"]["inference"] == 2.5
    assert "polygonize" in data["vectorize"]["steps_s"]
    assert data["provenance"]["model_name"] == "m"
    assert data["peak_rss_mb"] > 0
    assert report.quicklook_path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(OutputError, match="--overwrite"):
        write_run_report(tmp_path / "landcover.gpkg", raster, result, {})


def test_report_without_vectorizing_gives_shares(tmp_path: Path) -> None:
    raster = write_class_raster(tmp_path / "classes.tif", blocky_labels(4), tag=False)
    report = write_run_report(tmp_path / "run.gpkg", raster, None, {"inference": 1.0})
    data = report.data
    assert data["area_source"].startswith("decimated")
    assert sum(c["area_percent"] for c in data["classes"]) == pytest.approx(100.0)
    assert all(c["name"].startswith("class ") for c in data["classes"])
    assert report.quicklook_path.read_bytes()[:8] == PNG_SIGNATURE
