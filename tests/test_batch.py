"""Batch processing in-process: inputs, resume, parameter changes, errors, reports (tiny scenes)."""

from __future__ import annotations

import fcntl
import json
import socket
import sqlite3
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from conftest import S2_BANDS, make_card, save_fake_model, write_raster

import geoseg
from geoseg.batch import MERGED_NAME, REPORT_CSV, REPORT_JSON, BatchReport, run_batch
from geoseg.errors import BatchError, ModelError
from geoseg.io.archive import list_scenes
from geoseg.io.manifest import LOCK_NAME, MANIFEST_NAME
from geoseg.pipeline import PredictOptions

CPU = PredictOptions(device="cpu")


def make_scenes(folder: Path, count: int, *, size: int = 24) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        data = rng.integers(100, 3000, size=(6, size, size + 4), dtype=np.uint16)
        paths.append(write_raster(folder / f"s{i}.tif", data, descriptions=S2_BANDS))
    return paths


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_fake_model(tmp_path / "fake.pt", make_card(tile_size=32, overlap=4))


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    make_scenes(tmp_path / "in", 2)
    return tmp_path / "in"


def statuses(report: BatchReport) -> dict[str, str]:
    return {s.scene: s.status for s in report.scenes}


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.gpkg")}


def features(path: Path) -> list[tuple[int, str, float, bytes]]:
    frame = pyogrio.read_dataframe(path, layer="landcover")
    return [
        (int(c), str(n), round(float(a), 3), g)
        for c, n, a, g in zip(
            frame.class_id, frame.class_name, frame.area_m2, frame.geometry.to_wkb(), strict=True
        )
    ]


def test_folder_batch_writes_outputs_report_and_resumes(
    tmp_path: Path, scenes: Path, model: Path
) -> None:
    out = tmp_path / "out"
    seen: list[tuple[int, int, int]] = []
    report = run_batch(
        scenes, out, model=model, options=CPU, workers=0, progress=lambda *a: seen.append(a)
    )
    assert report.ok and report.count("done") == 2
    assert seen == [(1, 0, 1), (2, 0, 0)]
    assert sorted(p.name for p in out.glob("*.gpkg")) == ["s0.gpkg", "s1.gpkg"]
    data = json.loads((out / REPORT_JSON).read_text())
    assert data["ok"] and data["totals"]["done"] == 2
    scene = data["scenes"][0]
    assert scene["status"] == "done" and sum(scene["class_pixels"].values()) == 24 * 28
    assert sum(scene["class_area_m2"].values()) > 0
    assert (out / REPORT_CSV).read_text().splitlines()[0].startswith("scene,status,seconds")
    before = mtimes(out)

    # nothing left to do: no cluster is even started
    again = run_batch(scenes, out, model=model, options=CPU, workers=2)
    assert set(statuses(again).values()) == {"cached"}
    assert again.executor.startswith("none needed")
    assert mtimes(out) == before  # nothing rewritten
    assert again.totals()["class_pixels"] == report.totals()["class_pixels"]
    # speed-only settings do not redo anything
    fast = PredictOptions(device="cpu", batch_size=1, prefetch=False)
    assert set(statuses(run_batch(scenes, out, model=model, options=fast, workers=0)).values()) == {
        "cached"
    }


def test_interrupted_batch_redoes_only_missing_scenes(tmp_path: Path, model: Path) -> None:
    source = tmp_path / "in"
    make_scenes(source, 4)
    out = tmp_path / "out"

    def interrupt(done: int, failed: int, remaining: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(source, out, model=model, options=CPU, workers=0, progress=interrupt)
    assert sorted(p.name for p in out.glob("*.gpkg")) == ["s0.gpkg", "s1.gpkg"]
    partial = json.loads((out / REPORT_JSON).read_text())
    assert partial["totals"]["not_run"] == 2
    first = mtimes(out)

    report = run_batch(source, out, model=model, options=CPU, workers=0)
    assert statuses(report) == {
        "s0.tif": "cached",
        "s1.tif": "cached",
        "s2.tif": "done",
        "s3.tif": "done",
    }
    after = mtimes(out)
    assert {k: after[k] for k in first} == first
    assert len(after) == 4


def test_changed_parameter_or_model_redoes_everything_changed_file_only_itself(
    tmp_path: Path, scenes: Path, model: Path
) -> None:
    out = tmp_path / "out"
    run_batch(scenes, out, model=model, options=CPU, workers=0)
    report = run_batch(
        scenes, out, model=model, options=PredictOptions(device="cpu", min_area_m2=0), workers=0
    )
    assert set(statuses(report).values()) == {"done"}
    # back to the first settings: the files now hold the other settings' result, so redo
    report = run_batch(scenes, out, model=model, options=CPU, workers=0)
    assert set(statuses(report).values()) == {"done"}

    save_fake_model(model, make_card(tile_size=32, overlap=4), seed=1)
    report = run_batch(scenes, out, model=model, options=CPU, workers=0)
    assert set(statuses(report).values()) == {"done"}

    data = np.full((6, 24, 28), 500, dtype=np.uint16)
    data[:, :12] = 2500
    write_raster(scenes / "s1.tif", data, descriptions=S2_BANDS)
    report = run_batch(scenes, out, model=model, options=CPU, workers=0)
    assert statuses(report) == {"s0.tif": "cached", "s1.tif": "done"}

    (out / "s0.gpkg").unlink()  # a deleted output is redone
    report = run_batch(scenes, out, model=model, options=CPU, workers=0)
    assert statuses(report) == {"s0.tif": "done", "s1.tif": "cached"}
    with sqlite3.connect(out / MANIFEST_NAME) as db:
        assert db.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0] == 7


def test_archives_glob_and_list_give_the_same_outputs(
    tmp_path: Path, scenes: Path, model: Path
) -> None:
    nested = scenes / "2020"
    make_scenes(nested, 1)
    (scenes / "notes.txt").write_text("not a scene")
    reference = run_batch(scenes, tmp_path / "ref", model=model, options=CPU, workers=0)
    assert reference.ignored == ("notes.txt",)
    names = sorted(s.scene for s in reference.scenes)
    assert names == ["2020/s0.tif", "s0.tif", "s1.tif"]
    assert (tmp_path / "ref" / "2020" / "s0.gpkg").is_file()

    with zipfile.ZipFile(tmp_path / "scenes.zip", "w") as zipped:
        for path in sorted(scenes.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(scenes).as_posix())
    with tarfile.open(tmp_path / "scenes.tar.gz", "w:gz") as tarred:
        tarred.add(scenes, arcname=".")
    for archive in (tmp_path / "scenes.zip", tmp_path / "scenes.tar.gz"):
        out = tmp_path / f"out-{archive.name}"
        report = run_batch(archive, out, model=model, options=CPU, workers=0)
        assert report.ok, report.failures
        assert sorted(s.scene for s in report.scenes) == names
        assert all(s.source.startswith(("/vsizip/", "/vsitar/")) for s in report.scenes)
        for name in names:
            gpkg = name.replace(".tif", ".gpkg")
            assert features(out / gpkg) == features(tmp_path / "ref" / gpkg), (archive, name)
        # read in place: nothing unpacked anywhere
        assert sorted(p.name for p in tmp_path.rglob("*.tif") if "ref" not in p.parts) == [
            "s0.tif",
            "s0.tif",
            "s1.tif",
        ]
    # a list (relative to itself) and a glob find the same scenes by the same names
    listing = tmp_path / "scenes.txt"
    listing.write_text("# scenes\n\n" + "\n".join(f"in/{n}" for n in names) + "\n")
    for spec in (listing, f"{scenes}/**/*.tif"):
        found = list_scenes(spec)
        assert [s.name for s in found.scenes] == names
        assert [Path(s.path) for s in found.scenes] == [scenes / n for n in names]


def test_merged_geopackage_class_rasters_and_stale_temporaries(
    tmp_path: Path, scenes: Path, model: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".s0.gpkg.gpkg-0123abcd.gpkg", out / ".s0.gpkg.classes-89abcdef.tif"]
    for path in stale:
        path.write_bytes(b"half-written by a killed worker")
    keep = out / ".hidden-user-file"
    keep.write_text("mine")
    # the top-level lazy name is run_batch (once imported, ``geoseg.batch`` is the package)
    assert geoseg.__getattr__("batch") is run_batch
    report = run_batch(scenes, out, model=model, options=CPU, workers=0, merged=True)
    assert not any(p.exists() for p in stale)
    assert keep.exists()
    assert report.merged == out / MERGED_NAME
    merged = pyogrio.read_dataframe(out / MERGED_NAME, layer="landcover")
    per_scene = {s.scene: len(features(out / s.outputs[0])) for s in report.scenes}
    assert merged["scene"].value_counts().to_dict() == per_scene
    assert pyogrio.read_info(out / MERGED_NAME, layer="landcover")["crs"] == "EPSG:32618"
    # asking for rasters too redoes the scenes (an output is missing) and writes them
    report = run_batch(scenes, out, model=model, options=CPU, workers=0, raster=True)
    assert set(statuses(report).values()) == {"done"}
    assert all(len(s.outputs) == 2 and (out / s.outputs[1]).is_file() for s in report.scenes)


def test_merged_layer_of_scenes_in_different_crss_is_in_wgs84(
    tmp_path: Path, model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "in"
    make_scenes(folder, 1)
    data = np.random.default_rng(5).integers(100, 3000, size=(6, 24, 28), dtype=np.uint16)
    write_raster(folder / "utm19.tif", data, crs="EPSG:32619", descriptions=S2_BANDS)
    report = run_batch(folder, tmp_path / "out", model=model, options=CPU, workers=0, merged=True)
    assert report.merged is not None
    assert pyogrio.read_info(report.merged, layer="landcover")["crs"] == "EPSG:4326"
    assert "reprojected to EPSG:4326" in caplog.text


def test_bad_scenes_are_listed_and_fail_mode_stops(
    tmp_path: Path, scenes: Path, model: Path
) -> None:
    (scenes / "s1.tif").write_bytes(b"not a raster at all")
    make_scenes(tmp_path / "more", 3)
    (tmp_path / "more" / "s2.tif").rename(scenes / "s2.tif")
    write_raster(
        scenes / "s3.tif", np.zeros((6, 20, 20), np.uint16), nodata=0, descriptions=S2_BANDS
    )
    out = tmp_path / "out"
    report = run_batch(scenes, out, model=model, options=CPU, workers=0)
    assert not report.ok
    assert statuses(report) == {
        "s0.tif": "done",
        "s1.tif": "failed",
        "s2.tif": "done",
        "s3.tif": "failed",
    }
    errors = {s.scene: s.error for s in report.failures}
    assert errors["s1.tif"] is not None and errors["s3.tif"] is not None
    assert "not a readable raster" in errors["s1.tif"]
    assert "no valid pixel" in errors["s3.tif"]
    assert all("\n" not in e for e in errors.values() if e)
    assert not (out / "s1.gpkg").exists()

    stop = run_batch(
        scenes, tmp_path / "stop", model=model, options=CPU, workers=0, on_error="fail"
    )
    assert stop.stopped
    assert statuses(stop) == {
        "s0.tif": "done",
        "s1.tif": "failed",
        "s2.tif": "not_run",
        "s3.tif": "not_run",
    }


def test_non_raster_and_damaged_member_inside_archive_fail_alone(
    tmp_path: Path, scenes: Path, model: Path
) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(scenes / "s0.tif", "s0.tif")
        handle.writestr("bogus.tif", b"this is text, not a GeoTIFF")
    report = run_batch(archive, tmp_path / "out", model=model, options=CPU, workers=0)
    assert statuses(report) == {"bogus.tif": "failed", "s0.tif": "done"}
    assert "not a readable raster" in (report.failures[0].error or "")

    damaged = tmp_path / "damaged.zip"
    payload = bytearray(archive.read_bytes())
    start = payload.find(b"this is text")
    payload[start : start + 4] = b"XXXX"  # the member's bytes no longer match its CRC
    damaged.write_bytes(bytes(payload))
    report = run_batch(damaged, tmp_path / "out2", model=model, options=CPU, workers=0)
    assert statuses(report) == {"bogus.tif": "failed", "s0.tif": "done"}
    assert "cannot be read" in (report.failures[0].error or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda p: p.mkdir() or p, "no scenes in folder"),
        (lambda p: (p.mkdir(), (p / "a.txt").write_text("x"))[0] or p, "1 other files ignored"),
        (lambda p: _zip(p.with_suffix(".zip"), {}), "no scenes in archive"),
        (lambda p: _zip(p.with_suffix(".zip"), {"readme.md": b"x"}), "no scenes in archive"),
        (lambda p: _write(p.with_suffix(".zip"), b"PK\x03\x04 garbage"), "not a readable zip"),
        (lambda p: _write(p.with_suffix(".tar.gz"), b"\x1f\x8b garbage"), "not a readable tar"),
        (lambda p: p / "missing", "does not exist"),
        (lambda p: _write(p.with_suffix(".dat"), b"x"), "cannot tell what batch input"),
        (lambda p: _write(p.with_suffix(".txt"), b"# nothing\n"), "no scenes in list"),
    ],
)
def test_bad_inputs_are_one_line_batch_errors(
    tmp_path: Path, model: Path, make_input: Callable[[Path], Path], message: str
) -> None:
    spec = make_input(tmp_path / "input")
    with pytest.raises(BatchError, match=message) as info:
        run_batch(spec, tmp_path / "out", model=model, workers=0)
    assert "\n" not in str(info.value)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as handle:
        for name, payload in members.items():
            handle.writestr(name, payload)
    return path


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def test_bad_settings_are_one_line_errors(tmp_path: Path, scenes: Path, model: Path) -> None:
    afile = tmp_path / "out.txt"
    afile.write_text("x")
    with pytest.raises(BatchError, match="is a file"):
        run_batch(scenes, afile, model=model, workers=0)
    with pytest.raises(BatchError, match="is the input folder"):
        run_batch(scenes, scenes, model=model, workers=0)
    with pytest.raises(BatchError, match="on_error"):
        run_batch(scenes, tmp_path / "o", model=model, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(BatchError, match="not both"):
        run_batch(scenes, tmp_path / "o", model=model, workers=2, scheduler="tcp://127.0.0.1:1")
    held = tmp_path / "held"
    held.mkdir()
    with open(held / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BatchError, match="another geoseg batch is writing"):
            run_batch(scenes, held, model=model, workers=0)
    with pytest.raises(ModelError, match="unknown model"):
        run_batch(scenes, tmp_path / "o", model=tmp_path / "nope.pt", workers=0)
    start = time.perf_counter()
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(BatchError, match="cannot reach Dask scheduler") as info:
        run_batch(scenes, tmp_path / "o", model=model, scheduler=address)
    assert "\n" not in str(info.value) and time.perf_counter() - start < 10
    with pytest.raises(BatchError, match="not tcp://HOST:PORT"):
        run_batch(scenes, tmp_path / "o", model=model, scheduler="tcp://127.0.0.1")


def test_duplicate_names_from_a_list_get_distinct_outputs(tmp_path: Path, model: Path) -> None:
    make_scenes(tmp_path / "a", 1)
    make_scenes(tmp_path / "b", 1)
    listing = tmp_path / "list.txt"
    listing.write_text("a/s0.tif\nb/s0.tif\na/s0.tif\n")
    assert [s.name for s in list_scenes(listing).scenes] == ["a/s0.tif", "b/s0.tif"]
    listing.write_text(f"{tmp_path / 'a' / 's0.tif'}\nhttps://example.org/x/s0.tif\n")
    names = [s.name for s in list_scenes(listing).scenes]
    assert len(set(names)) == 2 and all(n.startswith("s0-") for n in names)


@pytest.mark.parametrize("name", ["geoseg.batch.plan", "geoseg.io.archive", "geoseg.io.manifest"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
