"""The command line: the happy path end to end, models/info, exit codes, quiet help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import torch
from click.testing import CliRunner
from conftest import save_fake_model, write_raster

from geoseg.cli import main
from geoseg.inference import native_bf16
from geoseg.models.loading import embedded_model_paths


def test_predict_writes_gpkg_raster_and_report(tmp_path: Path, fake_model: Path) -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(1, 3000, size=(6, 70, 90), dtype=np.uint16)
    data[:, :, :20] = 0
    scene = write_raster(tmp_path / "s.tif", data, nodata=0, crs="EPSG:32633")
    out, raster = tmp_path / "lc.gpkg", tmp_path / "lc.tif"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(scene),
            "--out",
            str(out),
            "--raster",
            str(raster),
            "--model",
            str(fake_model),
            "--min-area",
            "0",
            "--simplify",
            "0",
            "--tile-size",
            "32",
            "--overlap",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    polygons = gpd.read_file(out, layer="landcover")
    assert polygons.crs.to_epsg() == 32633
    assert {"class_id", "class_name", "area_m2"} <= set(polygons.columns)
    with rasterio.open(scene) as src, rasterio.open(raster) as cls:
        assert (cls.crs, cls.transform, cls.shape, cls.nodata) == (
            src.crs,
            src.transform,
            src.shape,
            255,
        )
        assert cls.dtypes[0] == "uint8" and cls.colormap(1)[0][:3] == (215, 25, 28)
        classes = cls.read(1)
    assert (classes[:, :20] == 255).all()
    # no polygon over nodata: the polygons cover exactly the valid pixels' area
    assert polygons.geometry.area.sum() == 100 * (classes != 255).sum()
    assert (tmp_path / "lc.report.json").exists() and (tmp_path / "lc.quicklook.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # QGIS's default style beside the raster: a paletted legend of the classes only, by name
    import xml.etree.ElementTree as ET

    style = ET.parse(tmp_path / "lc.qml").getroot()
    entries = style.findall("./pipe/rasterrenderer[@type='paletted']/colorPalette/paletteEntry")
    assert [e.get("label") for e in entries] == ["urban", "water", "forest", "farmland", "other"]
    assert entries[0].get("color") == "#d7191c" and entries[0].get("value") == "0"
    # a vector export whose style would take the raster's style name is refused up front
    clash = CliRunner().invoke(
        main,
        [
            *("predict", str(scene), "--out", str(tmp_path / "lc.shp"), "--raster", str(raster)),
            *("--model", str(fake_model), "--overwrite"),
        ],
    )
    assert clash.exit_code == 1 and "same file name" in clash.output


def test_info_prints_the_card(tmp_path: Path) -> None:
    model = save_fake_model(tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["info", str(model)])
    assert result.exit_code == 0
    assert "bands         blue, green, red, nir, swir16, swir22" in result.output
    assert "0 urban                #d7191c" in result.output
    assert "input         reflectance" in result.output
    card = json.loads(CliRunner().invoke(main, ["info", "--json", str(model)]).output)
    assert card["architecture"] == "convnet" and len(card["sha256"]) == 64


def test_models_lists_every_embedded_model() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    for name in embedded_model_paths():
        assert name in result.output
    # the pixel sizes each was trained for, which the default choice also weighs
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert " 10 m " in lines["landcover-s2-dw"]
    assert " 10-30 m " in lines["landcover-s2-dw6"]


def test_unknown_model_for_info_is_one_line() -> None:
    result = CliRunner().invoke(main, ["info", "nope"])
    assert result.exit_code == 1 and result.output.count("\n") == 1


def test_help_is_instant_and_imports_no_torch() -> None:
    code = "import sys, geoseg.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    result = CliRunner().invoke(main, ["predict", "--help"])
    assert result.exit_code == 0 and "--bands" in result.output


def test_usage_error_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "x.tif")])  # --out missing
    assert result.exit_code == 2


def test_batch_command_exit_codes(tmp_path: Path, fake_model: Path) -> None:
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(2):
        data = np.random.default_rng(i).integers(1, 3000, size=(6, 30, 40), dtype=np.uint16)
        write_raster(scenes / f"s{i}.tif", data)
    args = [
        "batch",
        str(scenes),
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(fake_model),
        "--workers",
        "0",
        "--quiet",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.gpkg")) == ["s0.gpkg", "s1.gpkg"]
    (scenes / "broken.tif").write_text("not a raster")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("geoseg: error: 1 of 3 scenes failed")


def test_evaluate_prints_a_table_and_writes_json(tmp_path: Path, fake_model: Path) -> None:
    rng = np.random.default_rng(7)
    scene = write_raster(
        tmp_path / "s.tif", rng.integers(1, 3000, size=(6, 40, 40), dtype=np.uint16)
    )
    labels = write_raster(
        tmp_path / "l.tif", rng.integers(0, 5, size=(1, 40, 40), dtype=np.uint8), nodata=255
    )
    out = tmp_path / "m.json"
    result = CliRunner().invoke(
        main, ["evaluate", str(scene), str(labels), "--model", str(fake_model), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "miou" in result.output.lower()
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics["pixel_accuracy"] <= 1.0
    # --json naming an input is refused before any pixel is predicted, and the input survives
    before = labels.read_bytes()
    for evaluated in (labels, fake_model):
        args = ["evaluate", str(scene), str(labels), "--model", str(fake_model)]
        refused = CliRunner().invoke(main, [*args, "--json", str(evaluated)])
        assert refused.exit_code != 0 and "an input of this run" in refused.output
        assert "miou" not in refused.output.lower()
    assert labels.read_bytes() == before


def test_predict_writes_confidence_on_the_scene_grid(tmp_path: Path, fake_model: Path) -> None:
    rng = np.random.default_rng(6)
    data = rng.integers(1, 3000, size=(6, 40, 50), dtype=np.uint16)
    data[:, :, :10] = 0
    # 20 m pixels for a 10 m model: predicted on a resampled grid, delivered on the scene's
    from affine import Affine

    scene = write_raster(
        tmp_path / "s.tif", data, nodata=0, transform=Affine(20, 0, 400000, 0, -20, 4000000)
    )
    out, raster, confidence = tmp_path / "lc.gpkg", tmp_path / "lc.tif", tmp_path / "conf.tif"
    args = ["predict", str(scene), "--out", str(out), "--raster", str(raster)]
    args += ["--model", str(fake_model), "--confidence", str(confidence)]
    args += ["--min-area", "0", "--simplify", "0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with rasterio.open(raster) as cls, rasterio.open(confidence) as conf:
        assert (conf.crs, conf.transform, conf.shape) == (cls.crs, cls.transform, cls.shape)
        assert conf.nodata == 255 and conf.dtypes[0] == "uint8"
        classes, values = cls.read(1), conf.read(1)
    np.testing.assert_array_equal(values == 255, classes == 255)
    mapped = values[classes != 255]
    # the top of five probabilities is at least a fifth
    assert mapped.size and mapped.min() >= 20 and mapped.max() <= 100
    report = json.loads((tmp_path / "lc.report.json").read_text())
    summary = report["confidence"]
    assert 20 <= summary["mean_percent"] <= 100
    assert summary["below_50_percent"] <= summary["below_70_percent"] <= 100
    assert summary["below_50_percent"] == round(100 * (mapped < 50).mean(), 2)
    # every polygon carries the mean confidence of the pixels it covers
    from rasterio.features import geometry_mask

    polygons = gpd.read_file(out, layer="landcover")
    assert polygons["confidence"].notna().all()
    with rasterio.open(confidence) as conf:
        for polygon in polygons.itertuples():
            inside = ~geometry_mask([polygon.geometry], conf.shape, conf.transform)
            expected = values[inside & (values != 255)].mean()
            assert abs(polygon.confidence - expected) <= 0.05 + 1e-9
    # a confidence that is not a GeoTIFF, or that would overwrite another output: one line
    for bad in (tmp_path / "conf.png", raster):
        args = ["predict", str(scene), "--out", str(tmp_path / "x.gpkg"), "--raster", str(raster)]
        args += ["--model", str(fake_model), "--confidence", str(bad), "--overwrite"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.gpkg").exists()


def test_review_list_ranks_unreviewed_polygons_least_confident_first(
    tmp_path: Path, fake_model: Path
) -> None:
    import sqlite3

    rng = np.random.default_rng(8)
    data = rng.integers(1, 3000, size=(6, 40, 50), dtype=np.uint16)
    scene = write_raster(tmp_path / "s.tif", data, crs="EPSG:32633")
    out = tmp_path / "lc.gpkg"
    args = ["predict", str(scene), "--out", str(out), "--model", str(fake_model)]
    args += ["--confidence", str(tmp_path / "c.tif"), "--min-area", "0", "--simplify", "0"]
    assert CliRunner().invoke(main, args).exit_code == 0
    polygons = gpd.read_file(out, layer="landcover")
    result = CliRunner().invoke(main, ["review-list", str(out), "--min-area", "0", "--top", "3"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.strip().splitlines()[1:]]
    shown = [float(r[3].rstrip("%")) for r in rows]
    assert len(rows) == 3 and shown == sorted(shown)
    assert shown[0] == round(float(polygons["confidence"].min()), 1)
    least = int(rows[0][0])
    # a polygon the analyst ticked is not listed again
    with sqlite3.connect(out) as db:
        db.execute("DROP TRIGGER IF EXISTS rtree_landcover_geom_update3")
        db.execute("DROP TRIGGER IF EXISTS rtree_landcover_geom_update4")
        db.execute("UPDATE landcover SET reviewed = 1 WHERE fid = ?", (int(least),))
    again = CliRunner().invoke(main, ["review-list", str(out), "--min-area", "0", "--top", "500"])
    listed = [int(line.split()[0]) for line in again.output.strip().splitlines()[1:]]
    assert least not in listed and len(listed) == len(polygons) - 1
    # a map without confidence, and a bad --top: one line each
    plain = tmp_path / "plain.gpkg"
    args = ["predict", str(scene), "--out", str(plain), "--model", str(fake_model)]
    assert CliRunner().invoke(main, args).exit_code == 0
    for bad in (["review-list", str(plain)], ["review-list", str(out), "--top", "0"]):
        result = CliRunner().invoke(main, bad)
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1


def test_tta_and_smoothing_from_the_command_line(tmp_path: Path, fake_model: Path) -> None:
    rng = np.random.default_rng(6)
    scene = write_raster(tmp_path / "s.tif", rng.integers(1, 3000, (6, 40, 44), dtype=np.uint16))
    args = ["predict", str(scene), "--model", str(fake_model), "--min-area", "0"]
    out = tmp_path / "lc.gpkg"
    result = CliRunner().invoke(
        main, [*args, "--out", str(out), "--tta", "flips,scales", "--smooth", "3"]
    )
    assert result.exit_code == 0, result.output
    parameters = json.loads((tmp_path / "lc.report.json").read_text())["provenance"]["parameters"]
    assert (parameters["tta"], parameters["smooth"]) == ("flips,scales", 3)
    # and what the network ran as: it moves near-ties, so a rerun should know it
    assert parameters["device"] == "cpu" and parameters["compile"] is False
    assert parameters["precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    # bad values: a usage error naming the choices, or one line naming the fix; nothing written
    bad_tta = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a.gpkg"), "--tta", "rot"])
    assert bad_tta.exit_code == 2 and "'flips,scales'" in bad_tta.output
    bad_smooth = CliRunner().invoke(
        main, [*args, "--out", str(tmp_path / "b.gpkg"), "--smooth", "4"]
    )
    assert bad_smooth.exit_code == 1 and bad_smooth.output.count("\n") == 1
    assert "odd" in bad_smooth.output
    assert not (tmp_path / "a.gpkg").exists() and not (tmp_path / "b.gpkg").exists()
