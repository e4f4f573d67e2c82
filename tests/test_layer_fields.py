"""Every polygon says which scene it came from and, where the file says it, when."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import rasterio
from conftest import write_raster

from geoseg.pipeline import predict


def test_source_scene_and_acquisition_date(tmp_path: Path, fake_model: Path) -> None:
    data = np.random.default_rng(0).integers(100, 3000, (6, 40, 50)).astype(np.uint16)
    dated = write_raster(tmp_path / "S2A_MSIL2A_20210527T112121_N0300_R037_T30UVD.tif", data)
    tagged = write_raster(tmp_path / "plain.tif", data)
    with rasterio.open(tagged, "r+") as dst:
        dst.update_tags(ACQUISITION_DATE="2019-08-09")
    for scene, date in ((dated, "2021-05-27"), (tagged, "2019-08-09")):
        out = tmp_path / f"{scene.stem}.gpkg"
        predict(scene, out, model=fake_model)
        frame = pyogrio.read_dataframe(out, layer="landcover")
        assert set(frame["source_scene"]) == {scene.name}
        assert set(frame["acquired"]) == {date}
    both = tmp_path / "both.gpkg"
    predict([dated, tagged], both, model=fake_model)
    frame = pyogrio.read_dataframe(both, layer="landcover")
    assert set(frame["source_scene"]) == {f"{dated.name};{tagged.name}"}
    assert set(frame["acquired"]) == {"2021-05-27;2019-08-09"}


def test_the_acquisition_date_from_tags_of_any_case_never_a_processing_date(
    tmp_path: Path,
) -> None:
    from geoseg.io.scene import open_scene

    data = np.ones((3, 8, 8), np.uint16)
    cases = [
        ({"sensing_date": "2018-07-04"}, "2018-07-04"),
        ({"datetime": "2022-03-01T10:20:30Z"}, "2022-03-01"),
        ({"DATE_PRODUCT_GENERATED": "2020-09-08", "DATE_ACQUIRED": "2015-12-05"}, "2015-12-05"),
        ({"DATE_PRODUCT_GENERATED": "2020-09-08", "PROCESSING_DATE": "2020-09-08"}, ""),
    ]
    for number, (tags, date) in enumerate(cases):
        path = write_raster(tmp_path / f"plain{number}.tif", data)
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(**tags)
        assert open_scene(path).acquired == date, tags


def test_an_mtl_date_beats_a_generic_date_tag(tmp_path: Path) -> None:
    import dataclasses

    from geoseg.io.scene import open_scene

    scene = open_scene(write_raster(tmp_path / "export.tif", np.ones((3, 8, 8), np.uint16)))
    # a generic DATE tag may be when the file was written: an MTL's acquisition date comes first
    written = dataclasses.replace(scene, tags={"DATE": "2024-01-01"})
    assert written.acquired == "2024-01-01"
    with_mtl = dataclasses.replace(written, landsat_mtl={"DATE_ACQUIRED": "2015-12-05"})
    assert with_mtl.acquired == "2015-12-05"
