"""Forward-pass precision: the option is checked, and bfloat16 stays close to float32."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import rasterio

from geoseg.errors import ConfigError
from geoseg.pipeline import PredictOptions, predict


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        PredictOptions(precision="fp8")


def test_bf16_agrees_with_fp32_on_almost_every_pixel(
    tmp_path: Path, fake_model: Path, scene_factory: Callable[..., Path]
) -> None:
    scene = scene_factory(height=96, width=80, seed=4)
    classes = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.tif"
        predict(
            scene, None, model=fake_model, raster=out, options=PredictOptions(precision=precision)
        )
        with rasterio.open(out) as src:
            classes[precision] = src.read(1)
    agreement = float((classes["fp32"] == classes["bf16"]).mean())
    # rounding flips only near-ties; a broken bf16 path (wrong scaling, casts) would flip most
    assert agreement >= 0.95
