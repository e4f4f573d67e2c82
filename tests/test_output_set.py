"""The output set: a run's outputs renamed into place together, or all removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geoseg.errors import ConfigError, OutputError
from geoseg.io.output_set import OutputSet, check_outputs


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_commit_renames_every_output_and_the_report_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "map.tif").write_text("old map")
    outputs = OutputSet()
    report = outputs.reserve(tmp_path / "map.report.json", "report", last=True)
    raster = outputs.reserve(tmp_path / "map.tif", "cog")
    gpkg = outputs.reserve(tmp_path / "map.gpkg", "gpkg")
    scratch = outputs.scratch(tmp_path / "map.tif", "classes")
    for path in (report, raster, gpkg, scratch):
        assert path.parent == tmp_path and path.name.startswith(".")
        path.write_text(path.name)
    (raster.parent / (raster.name + ".aux.xml")).write_text("GDAL's own sidecar")
    assert outputs.finals == (
        tmp_path / "map.tif",
        tmp_path / "map.gpkg",
        tmp_path / "map.report.json",
    )
    renamed: list[str] = []
    replace = os.replace

    def recording(src: str | Path, dst: str | Path) -> None:
        renamed.append(Path(dst).name)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    outputs.commit()
    assert renamed == ["map.tif", "map.gpkg", "map.report.json"]
    assert names(tmp_path) == ["map.gpkg", "map.report.json", "map.tif"]
    assert (tmp_path / "map.tif").read_text() == raster.name  # the old output replaced


def test_rollback_leaves_nothing_and_existing_outputs_as_they_were(tmp_path: Path) -> None:
    (tmp_path / "map.gpkg").write_text("old polygons")
    outputs = OutputSet()
    gpkg = outputs.reserve(tmp_path / "map.gpkg", "gpkg")
    gpkg.write_text("new polygons")
    for sidecar in ("-journal", "-wal", ".aux.xml", ".ovr"):
        (gpkg.parent / (gpkg.name + sidecar)).write_text("sidecar")
    scratch = outputs.scratch(tmp_path / "map.tif", "classes")
    scratch.write_text("classes")
    (scratch.parent / (scratch.name + ".aux.xml")).write_text("sidecar")
    outputs.reserve(tmp_path / "map.report.json", last=True)  # never written
    outputs.rollback()
    assert names(tmp_path) == ["map.gpkg"]
    assert (tmp_path / "map.gpkg").read_text() == "old polygons"
    outputs.commit()  # nothing left to rename
    assert names(tmp_path) == ["map.gpkg"]


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_exception_inside_rolls_back(tmp_path: Path, exc: BaseException) -> None:
    with pytest.raises(type(exc)), OutputSet() as outputs:
        outputs.reserve(tmp_path / "map.tif").write_text("half a map")
        outputs.scratch(tmp_path / "map.tif").write_text("scratch")
        raise exc
    assert names(tmp_path) == []


def test_the_context_commits_on_success_and_removes_scratch(tmp_path: Path) -> None:
    with OutputSet() as outputs:
        outputs.reserve(tmp_path / "map.tif").write_text("map")
        outputs.scratch(tmp_path / "map.tif").write_text("scratch")
    assert names(tmp_path) == ["map.tif"]


def test_an_adopted_temporary_is_renamed_with_the_rest(tmp_path: Path) -> None:
    part = tmp_path / ".map.export-1234.shp"
    part.write_text("shapes")
    with OutputSet() as outputs:
        outputs.adopt(part, tmp_path / "map.shp")
    assert names(tmp_path) == ["map.shp"]


def test_a_reserved_temporary_never_written_renames_nothing(tmp_path: Path) -> None:
    (tmp_path / "map.report.json").write_text("old report")
    needle = r"nothing was written for .*map\.gpkg"
    with pytest.raises(OutputError, match=needle), OutputSet() as outputs:
        outputs.reserve(tmp_path / "map.tif").write_text("map")
        outputs.reserve(tmp_path / "map.gpkg")
        outputs.reserve(tmp_path / "map.report.json", last=True).write_text("new report")
    # all or nothing: no output renamed, every temporary removed
    assert names(tmp_path) == ["map.report.json"]
    assert (tmp_path / "map.report.json").read_text() == "old report"


def test_check_outputs(tmp_path: Path) -> None:
    check_outputs([tmp_path / "a.gpkg", None, tmp_path / "a.tif"], overwrite=False)
    with pytest.raises(ConfigError, match="same file name"):
        check_outputs([tmp_path / "a.tif", tmp_path / "." / "a.tif"], overwrite=True)
    (tmp_path / "a.tif").write_text("old")
    with pytest.raises(OutputError, match="--overwrite"):
        check_outputs([tmp_path / "a.tif"], overwrite=False)
    check_outputs([tmp_path / "a.tif"], overwrite=True)
