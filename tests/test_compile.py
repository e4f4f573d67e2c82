"""Compiling the network on request: a failed compile costs only the speed-up."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import rasterio
import torch
from conftest import make_card, save_fake_model

from geoseg import inference
from geoseg.inference import cxx_compiler, should_compile
from geoseg.pipeline import PredictOptions, predict

CPU = torch.device("cpu")


@pytest.fixture
def compiler_found(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    def set_found(found: bool) -> None:
        monkeypatch.setattr(inference, "cxx_compiler", lambda: "/usr/bin/g++" if found else None)

    return set_found


def test_compiling_is_a_request_kept_where_it_can_be_done(
    compiler_found: Callable[[bool], None], caplog: pytest.LogCaptureFixture
) -> None:
    compiler_found(True)
    assert should_compile(True, CPU)
    assert not should_compile(False, CPU)
    compiler_found(False)
    with caplog.at_level(logging.WARNING, logger="geoseg.inference"):
        assert not should_compile(True, CPU)
    assert "no C++ compiler" in caplog.text
    # CUDA compiles with its own toolchain (triton), not the host's C++ compiler
    assert should_compile(True, torch.device("cuda"))


def _classes(path: Path) -> torch.Tensor:
    with rasterio.open(path) as src:
        return torch.from_numpy(src.read(1))


def test_a_failed_compile_runs_the_network_as_it_is(
    tmp_path: Path,
    scene_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scene = scene_factory(height=90, width=100)
    model = save_fake_model(tmp_path / "m.pt", make_card(tile_size=64, overlap=8))
    predict(scene, None, model=model, raster=tmp_path / "plain.tif")

    def broken(*args: object, **kwargs: object) -> Callable[[torch.Tensor], torch.Tensor]:
        def call(x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("InductorError: the C++ compiler is missing\nmore lines")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="geoseg.inference"):
        options = PredictOptions(compile=True)
        predict(scene, None, model=model, raster=tmp_path / "fallback.tif", options=options)
    assert torch.equal(_classes(tmp_path / "plain.tif"), _classes(tmp_path / "fallback.tif"))
    warnings = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1  # once per run, not once per tile
    assert "more lines" not in warnings[0].getMessage()


@pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler: torch.compile cannot run")
def test_a_compiled_network_gives_the_same_classes(
    tmp_path: Path, scene_factory: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    scene = scene_factory(height=70, width=60)
    model = save_fake_model(tmp_path / "m.pt", make_card(tile_size=64, overlap=8))
    with caplog.at_level(logging.WARNING, logger="geoseg.inference"):
        for name, compiled in (("plain", False), ("compiled", True)):
            options = PredictOptions(compile=compiled, precision="fp32")
            predict(scene, None, model=model, raster=tmp_path / f"{name}.tif", options=options)
    assert "torch.compile failed" not in caplog.text  # it did compile
    plain, compiled_classes = _classes(tmp_path / "plain.tif"), _classes(tmp_path / "compiled.tif")
    assert (plain == compiled_classes).float().mean().item() >= 0.999
