"""Every bad input is a one-line error (exit 1, no traceback) and leaves no partial output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_raster

from geoseg.cli import main
from geoseg.errors import (
    BandMappingError,
    EmptySceneError,
    GeosegError,
    InvalidSceneError,
    ModelError,
    OutputError,
)
from geoseg.pipeline import PredictOptions, predict


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, needle: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 1, output
    assert len(lines) == 1, output
    assert lines[0].startswith("geoseg: error: "), output
    assert needle in lines[0], output
    assert "Traceback" not in output


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def scene(scene_factory: Callable[..., Path]) -> Path:
    return scene_factory(height=30, width=30)


def truncated(tmp_path: Path) -> Path:
    data = np.random.default_rng(0).integers(0, 3000, size=(6, 200, 200), dtype=np.uint16)
    path = write_raster(tmp_path / "truncated.tif", data, tiled=False)
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.truncate(size // 2)
    return path


def not_a_raster(tmp_path: Path) -> Path:
    path = tmp_path / "notes.tif"
    path.write_text("this is not a GeoTIFF\n")
    return path


def no_crs(tmp_path: Path) -> Path:
    data = np.ones((6, 20, 20), dtype=np.uint16)
    return write_raster(tmp_path / "nocrs.tif", data, crs=None)


def no_transform(tmp_path: Path) -> Path:
    data = np.ones((6, 20, 20), dtype=np.uint16)
    return write_raster(tmp_path / "notransform.tif", data, transform=None)


def all_nodata(tmp_path: Path) -> Path:
    data = np.zeros((6, 20, 20), dtype=np.uint16)
    return write_raster(tmp_path / "empty.tif", data, nodata=0)


def three_bands(tmp_path: Path) -> Path:
    data = np.ones((3, 20, 20), dtype=np.uint16)
    return write_raster(tmp_path / "rgb.tif", data)


@pytest.mark.parametrize(
    ("make_scene", "error", "needle"),
    [
        (lambda p: p / "missing.tif", InvalidSceneError, "does not exist"),
        (not_a_raster, InvalidSceneError, "not a readable raster"),
        (truncated, InvalidSceneError, "truncated"),
        (no_crs, InvalidSceneError, "no CRS"),
        (no_transform, InvalidSceneError, "no geotransform"),
        (all_nodata, EmptySceneError, "all nodata"),
        (three_bands, BandMappingError, "blue, green, red, nir, swir16, swir22"),
    ],
)
def test_bad_scenes(
    tmp_path: Path, fake_model: Path, make_scene: Callable[[Path], Path], error: type, needle: str
) -> None:
    scene = make_scene(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(error, match=needle):
        predict(scene, out / "lc.gpkg", model=fake_model, raster=out / "lc.tif")
    assert leftovers(out, set()) == []
    code, output = run_cli(
        "predict", str(scene), "--out", str(out / "lc.gpkg"), "--model", str(fake_model)
    )
    assert_one_line_error(code, output, needle)
    assert leftovers(out, set()) == []


@pytest.mark.parametrize(
    ("bands", "needle"),
    [
        ("1,2,3,4,5,9", "out of range"),
        ("blue,green,red,nir,swir16,cirrus", "no band of the scene"),
        ("1,2,3", "needs 6"),
    ],
)
def test_bad_bands(tmp_path: Path, scene: Path, fake_model: Path, bands: str, needle: str) -> None:
    code, output = run_cli(
        "predict",
        str(scene),
        "--out",
        str(tmp_path / "x.gpkg"),
        "--model",
        str(fake_model),
        "--bands",
        bands,
    )
    assert_one_line_error(code, output, needle)
    with pytest.raises(BandMappingError):
        predict(
            scene,
            None,
            model=fake_model,
            raster=tmp_path / "x.tif",
            options=PredictOptions(bands=tuple(bands.split(","))),
        )
    assert not (tmp_path / "x.gpkg").exists() and not (tmp_path / "x.tif").exists()


def test_bands_by_description(
    tmp_path: Path, fake_model: Path, scene_factory: Callable[..., Path]
) -> None:
    names = ["swir22", "swir16", "nir", "red", "green", "blue", "extra"]
    scene = scene_factory(bands=7, descriptions=names)
    result = predict(scene, None, model=fake_model, raster=tmp_path / "c.tif")
    assert result.bands == (6, 5, 4, 3, 2, 1)


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        (lambda p: p / "no-such-folder" / "x.gpkg", "does not exist"),
        (lambda p: Path("/proc/geoseg-test.gpkg"), "not writable"),
    ],
)
def test_bad_outputs(
    tmp_path: Path, scene: Path, fake_model: Path, out: Callable[[Path], Path], needle: str
) -> None:
    code, output = run_cli(
        "predict", str(scene), "--out", str(out(tmp_path)), "--model", str(fake_model)
    )
    assert_one_line_error(code, output, needle)


def test_output_that_is_a_folder(tmp_path: Path, scene: Path, fake_model: Path) -> None:
    code, output = run_cli(
        "predict", str(scene), "--out", str(tmp_path), "--model", str(fake_model)
    )
    assert code == 2 and "directory" in output  # a usage error, refused by click
    with pytest.raises(OutputError, match="is a folder"):
        predict(scene, tmp_path, model=fake_model)


def test_existing_output_needs_overwrite(tmp_path: Path, scene: Path, fake_model: Path) -> None:
    target = tmp_path / "lc.tif"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="--overwrite"):
        predict(scene, None, model=fake_model, raster=target)
    assert target.read_bytes() == b"precious"
    predict(scene, None, model=fake_model, raster=target, overwrite=True)
    assert target.read_bytes() != b"precious"


@pytest.mark.parametrize(
    ("model", "needle"),
    [("no-such-model", "unknown model"), ("notes", "not a geoseg model file")],
)
def test_bad_models(tmp_path: Path, scene: Path, model: str, needle: str) -> None:
    if model == "notes":
        path = tmp_path / "notes.pt"
        path.write_text("not a model")
        model = str(path)
    with pytest.raises(ModelError, match=needle):
        predict(scene, None, model=model, raster=tmp_path / "x.tif")
    code, output = run_cli(
        "predict", str(scene), "--out", str(tmp_path / "x.gpkg"), "--model", model
    )
    assert_one_line_error(code, output, needle)


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_crash_mid_run_leaves_nothing(
    tmp_path: Path, fake_model: Path, scene_factory: Callable[..., Path], exc: BaseException
) -> None:
    scene = scene_factory(height=200, width=200)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "lc.tif"
    target.write_bytes(b"old result")

    def explode(done: int, total: int) -> None:
        if done >= 2:
            raise exc

    with pytest.raises(type(exc)):
        predict(scene, None, model=fake_model, raster=target, overwrite=True, progress=explode)
    # the old output is untouched and no temporary file is left behind
    assert leftovers(out, {"lc.tif"}) == []
    assert target.read_bytes() == b"old result"


def test_errors_share_one_root() -> None:
    assert issubclass(InvalidSceneError, GeosegError) and issubclass(InvalidSceneError, ValueError)
    assert issubclass(OutputError, OSError)


@pytest.mark.parametrize("which", ["scene", "hard link to the scene", "model", "confidence"])
def test_an_output_never_replaces_an_input_even_with_overwrite(
    tmp_path: Path, scene: Path, fake_model: Path, which: str
) -> None:
    target = {"model": fake_model}.get(which, scene)
    if which == "hard link to the scene":
        target = tmp_path / "link.tif"
        target.hardlink_to(scene)
    before = {p: p.read_bytes() for p in (scene, fake_model)}
    flag = "--confidence" if which == "confidence" else "--raster"
    code, output = run_cli(
        "predict", str(scene), "--out", str(tmp_path / "lc.gpkg"), flag, str(target),
        "--model", str(fake_model), "--overwrite",
    )  # fmt: skip
    assert_one_line_error(code, output, "an input of this run")
    assert all(p.read_bytes() == data for p, data in before.items())
    assert not (tmp_path / "lc.gpkg").exists()


def test_evaluate_never_writes_its_json_over_its_labels(tmp_path: Path, scene: Path) -> None:
    labels = tmp_path / "labels.tif"
    labels.write_bytes(b"labels a person drew")
    code, output = run_cli("evaluate", str(scene), str(labels), "--json", str(labels))
    assert_one_line_error(code, output, "an input of this run")
    assert labels.read_bytes() == b"labels a person drew"
