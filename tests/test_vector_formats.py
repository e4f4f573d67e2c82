"""--out writes the format its extension names, styled where the format allows, or refuses it."""

from __future__ import annotations

from pathlib import Path

import pyogrio
import pytest
from click.testing import CliRunner

from geoseg.cli import main
from geoseg.errors import OutputError
from geoseg.pipeline import predict


@pytest.mark.parametrize("suffix", [".shp", ".geojson", ".fgb"])
def test_other_formats_by_extension(
    tmp_path: Path, scene_factory: object, fake_model: Path, suffix: str
) -> None:
    scene = scene_factory()  # type: ignore[operator]
    out = tmp_path / f"landcover{suffix}"
    result = CliRunner().invoke(
        main, ["predict", str(scene), "--out", str(out), "--model", str(fake_model)]
    )
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    frame = pyogrio.read_dataframe(out)
    assert {"class_id", "class_name", "area_m2"} <= set(frame.columns)
    assert len(frame) > 0 and frame.crs.to_epsg() == 32618
    assert out.with_suffix(".qml").read_text().startswith("<!DOCTYPE qgis")
    # nothing temporary is left beside the outputs
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_unknown_extensions_are_refused_before_any_work(
    tmp_path: Path, scene_factory: object, fake_model: Path
) -> None:
    scene = scene_factory()  # type: ignore[operator]
    with pytest.raises(OutputError, match=r"unknown format \.kml; use \.gpkg, \.shp"):
        predict(scene, tmp_path / "x.kml", model=fake_model)
    with pytest.raises(OutputError, match="GeoParquet needs pyarrow"):
        predict(scene, tmp_path / "x.parquet", model=fake_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.pt", Path(str(scene)).name]


def test_vectorize_writes_other_formats_too(
    tmp_path: Path, scene_factory: object, fake_model: Path
) -> None:
    scene = scene_factory()  # type: ignore[operator]
    classes = tmp_path / "classes.tif"
    predict(scene, None, model=fake_model, raster=classes)
    out = tmp_path / "polygons.shp"
    result = CliRunner().invoke(main, ["vectorize", str(classes), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pyogrio.read_dataframe(out)) > 0 and out.with_suffix(".qml").exists()
    again = CliRunner().invoke(main, ["vectorize", str(classes), "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.output
