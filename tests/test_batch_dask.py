"""Batches on a real multi-process Dask cluster on loopback, over real Sentinel-2 scenes.

The scenes are dates of the Rufiji (Tanzania) Sentinel-2 series from ../shared/data (Copernicus
Sentinel data; rsgislib test data, GPL-3.0 repository); the model is the fake convnet, so the
checks are about execution (same outputs as in-process, faults, resume), not accuracy.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import rasterio
from conftest import make_card, save_fake_model, shared_data_dir

from geoseg.batch import BatchReport, run_batch
from geoseg.io.manifest import LOCK_NAME, MANIFEST_NAME
from geoseg.pipeline import PredictOptions

CPU = PredictOptions(device="cpu")
SCENES = 4


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder and a zip of real scenes, and the in-process reference outputs."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("real data not available: ../shared/data is absent (set GEOSEG_SHARED_DATA)")
    root = tmp_path_factory.mktemp("real")
    folder = root / "scenes"
    folder.mkdir()
    for path in sorted((data / "s2-tanzania-series").glob("*.tif"))[:SCENES]:
        shutil.copy(path, folder / path.name)
    with zipfile.ZipFile(root / "scenes.zip", "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"tanzania/{path.name}")
    # the model's bands are found among the scenes' band descriptions (B2 ... B12)
    save_fake_model(root / "fake.pt", make_card(tile_size=64, overlap=8))
    report = run_batch(
        folder, root / "reference", model=root / "fake.pt", options=CPU, workers=0, raster=True
    )
    assert report.ok, report.failures
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as local:
        yield local


def gpkg_features(path: Path) -> list[tuple[int, str, float, bytes]]:
    frame = pyogrio.read_dataframe(path, layer="landcover")
    return [
        (int(c), str(n), round(float(a), 3), g)
        for c, n, a, g in zip(
            frame.class_id, frame.class_name, frame.area_m2, frame.geometry.to_wkb(), strict=True
        )
    ]


def assert_matches_reference(report: BatchReport, real: Path, prefix: str = "") -> None:
    assert report.ok, report.failures
    assert len(report.scenes) == SCENES
    reference = real / "reference"
    for scene in report.scenes:
        stem = Path(scene.scene).with_suffix("").name
        out = report.out_dir / scene.outputs[0]
        assert gpkg_features(out) == gpkg_features(reference / f"{stem}.gpkg"), scene.scene
        if len(scene.outputs) > 1:
            with (
                rasterio.open(report.out_dir / scene.outputs[1]) as got,
                rasterio.open(reference / f"{stem}.classes.tif") as want,
            ):
                assert np.array_equal(got.read(), want.read())
    # every scene exactly once, no temporaries left behind
    gpkgs = sorted(p.name for p in report.out_dir.rglob("*.gpkg") if p.name != "geoseg-merged.gpkg")
    assert len(gpkgs) == SCENES
    assert not [p for p in report.out_dir.rglob(".*") if p.name != LOCK_NAME]


def test_local_cluster_over_a_zip_matches_in_process(real: Path) -> None:
    # the cluster run_batch starts itself: a scheduler and two worker processes on loopback
    zipped = run_batch(
        real / "scenes.zip",
        real / "out-zip",
        model=real / "fake.pt",
        options=CPU,
        workers=2,
        raster=True,
        merged=True,
    )
    assert zipped.executor == "local cluster, 2 workers"
    assert all(s.source.startswith("/vsizip/") for s in zipped.scenes)
    assert_matches_reference(zipped, real)
    assert all(s.scene.startswith("tanzania/") for s in zipped.scenes)
    merged = pyogrio.read_dataframe(zipped.merged, layer="landcover")
    assert merged["scene"].nunique() == SCENES


def test_interrupted_cluster_batch_over_a_folder_resumes_with_missing_scenes_only(
    real: Path, cluster: Any
) -> None:
    address = cluster.scheduler_address
    out = real / "out-interrupted"

    def interrupt(done: int, failed: int, remaining: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(
            real / "scenes",
            out,
            model=real / "fake.pt",
            options=CPU,
            scheduler=address,
            progress=interrupt,
        )
    with sqlite3.connect(out / MANIFEST_NAME) as db:
        recorded = {r[0] for r in db.execute("SELECT scene FROM runs WHERE status = 'done'")}
    assert len(recorded) == 2
    report = run_batch(real / "scenes", out, model=real / "fake.pt", options=CPU, scheduler=address)
    assert {s.scene for s in report.scenes if s.status == "cached"} == recorded
    assert report.count("done") == SCENES - 2
    assert report.executor == address
    assert_matches_reference(report, real)


def test_killed_worker_mid_batch_is_rescheduled(real: Path, cluster: Any) -> None:
    from distributed import Client

    address = cluster.scheduler_address
    killed: list[str] = []
    with Client(address, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        pids = client.run(os.getpid)

        def kill_busy_worker(done: int, failed: int, remaining: int) -> None:
            if killed or remaining == 0:
                return
            busy = [addr for addr, keys in client.processing().items() if keys]
            if busy:
                killed.append(busy[0])
                os.kill(pids[busy[0]], signal.SIGKILL)

        report = run_batch(
            real / "scenes",
            real / "out-fault",
            model=real / "fake.pt",
            options=CPU,
            scheduler=address,
            raster=True,
            progress=kill_busy_worker,
        )
    assert killed, "no worker was busy to kill"
    assert_matches_reference(report, real)
    with sqlite3.connect(report.out_dir / MANIFEST_NAME) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == SCENES
