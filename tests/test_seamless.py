"""Tiled prediction equals whole-image prediction, pixel for pixel (the no-seams guarantee).

The fake model is a stack of 3x3 convolutions whose receptive field radius (its layer count) fits
in half the overlap, so every core pixel sees exactly what it would see in the whole image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch
from conftest import S2_BANDS, make_card, save_fake_model, write_raster
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from geoseg.core import NODATA as NODATA_CLASS
from geoseg.io.scene import open_scene, read_sample
from geoseg.models.loading import LoadedModel, load_model
from geoseg.normalization import InputTransform
from geoseg.pipeline import PredictOptions, predict
from geoseg.radiometry import resolve_radiometry


def whole_image_classes(scene_path: Path, model_path: Path, confidence: bool = False) -> np.ndarray:
    """Reference: the network applied once to the whole normalized scene.

    With ``confidence``, the top class probability in percent instead of the classes.
    """
    model = load_model(model_path)
    scene = open_scene(scene_path)
    bands = tuple(range(1, scene.count + 1))
    sample, valid = read_sample(scene, bands)  # small scenes: a full-resolution read
    assert sample.shape[1:] == scene.shape
    radiometry = resolve_radiometry(scene.radiometric_info(), bands, model.card.bands)
    transform = InputTransform(radiometry, model.card.normalization)
    x = torch.from_numpy(transform.apply(sample) * valid)[None]
    with torch.inference_mode():
        logits = model.network(x)[0]
    if confidence:
        top = np.round(torch.softmax(logits, 0).amax(0).numpy() * 100).astype(np.uint8)
        top[~valid] = NODATA_CLASS
        return top
    ids = np.asarray(model.card.class_ids, dtype=np.uint8)
    classes: np.ndarray = ids[logits.argmax(0).numpy()]
    classes[~valid] = NODATA_CLASS
    return classes


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(  # a pixel whose two best logits a softmax rounds to one probability
    height=74, width=106, tile=16, layers=3, extra_overlap=0, seed=24662, with_nodata=True
)
@given(
    height=st.integers(1, 120),
    width=st.integers(1, 120),
    tile=st.integers(16, 48),
    layers=st.integers(1, 3),
    extra_overlap=st.integers(0, 4),
    seed=st.integers(0, 2**16),
    with_nodata=st.booleans(),
)
def test_tiled_equals_whole_image(
    tmp_path: Path,
    height: int,
    width: int,
    tile: int,
    layers: int,
    extra_overlap: int,
    seed: int,
    with_nodata: bool,
) -> None:
    overlap = min(2 * layers + extra_overlap, (tile - 1) // 2)  # always >= 2 * layers
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 4000, size=(6, height, width), dtype=np.uint16)
    if with_nodata:
        data[:, rng.random((height, width)) < 0.1] = 0
        data[:, :, : width // 4] = 0  # a collar
        data[0, 0, -1] = 1  # keep at least one valid pixel
        data[:, 0, -1] = 7
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    scene = write_raster(
        case / "scene.tif",
        data,
        nodata=0 if with_nodata else None,
        block=16,
        descriptions=S2_BANDS,
    )
    card = make_card(arch_params={"layers": layers, "width": 8}, tile_size=tile, overlap=overlap)
    model = save_fake_model(case / "model.pt", card, seed=seed)
    out = case / "classes.tif"
    # float32 like the reference: this checks the tiling, not bfloat16 rounding (measured apart
    # by benchmarks/precision_agreement.py)
    options = PredictOptions(batch_size=3, precision="fp32")
    confidence = case / "confidence.tif"
    predict(scene, None, model=model, raster=out, options=options, confidence=confidence)
    with rasterio.open(out) as src:
        tiled = src.read(1)
    np.testing.assert_array_equal(tiled, whole_image_classes(scene, model))
    # the confidence is seam-free too (a rounding to whole percent may differ by one)
    with rasterio.open(confidence) as src:
        assert (src.crs, src.transform, src.shape) == (open_scene(out).crs, *_grid(out))
        tiled_confidence = src.read(1)
    reference = whole_image_classes(scene, model, confidence=True)
    np.testing.assert_array_equal(tiled_confidence == NODATA_CLASS, tiled == NODATA_CLASS)
    difference = np.abs(tiled_confidence.astype(int) - reference.astype(int))
    assert difference.max() <= 1


def _model_input(scene_path: Path, model: LoadedModel) -> torch.Tensor:
    """The whole scene as the model sees it: ``(bands, H, W)``, its radiometry worked out."""
    scene = open_scene(scene_path)
    bands = tuple(range(1, scene.count + 1))
    sample, _ = read_sample(scene, bands)
    radiometry = resolve_radiometry(scene.radiometric_info(), bands, model.card.bands)
    return torch.from_numpy(InputTransform(radiometry, model.card.normalization).apply(sample))


def _grid(path: Path) -> tuple[object, tuple[int, int]]:
    with rasterio.open(path) as src:
        return src.transform, src.shape


def test_flip_averaging_keeps_tiles_equal_to_the_whole_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(1, 4000, size=(6, 70, 53), dtype=np.uint16)
    scene = write_raster(tmp_path / "scene.tif", data, descriptions=S2_BANDS)
    card = make_card(arch_params={"layers": 2, "width": 8}, tile_size=24, overlap=8)
    model_path = save_fake_model(tmp_path / "model.pt", card, seed=3)
    options = PredictOptions(batch_size=2, precision="fp32", tta="flips")
    predict(scene, None, model=model_path, raster=tmp_path / "tta.tif", options=options)
    with rasterio.open(tmp_path / "tta.tif") as src:
        tiled = src.read(1)
    # reference: the whole image's logits averaged over the same four flips
    model = load_model(model_path)
    x = _model_input(scene, model)[None]
    with torch.inference_mode():
        flips: list[tuple[int, ...]] = [(), (-1,), (-2,), (-2, -1)]
        logits = sum(
            torch.flip(model.network(torch.flip(x, d) if d else x), d) if d else model.network(x)
            for d in flips
        )
    assert isinstance(logits, torch.Tensor)
    reference = np.asarray(model.card.class_ids, np.uint8)[logits[0].argmax(0).numpy()]
    np.testing.assert_array_equal(tiled, reference)
    # and flips change something: the check can fail
    plain = tmp_path / "plain.tif"
    options = PredictOptions(batch_size=2, precision="fp32")
    predict(scene, None, model=model_path, raster=plain, options=options)
    with rasterio.open(plain) as src:
        assert (src.read(1) != tiled).any()


def test_smoothing_keeps_tiles_equal_to_the_smoothed_whole_image(tmp_path: Path) -> None:
    from geoseg.smoothing import majority_filter

    rng = np.random.default_rng(4)
    data = rng.integers(1, 4000, size=(6, 61, 47), dtype=np.uint16)
    data[:, :5, :9] = 0  # some nodata
    scene = write_raster(tmp_path / "scene.tif", data, nodata=0, descriptions=S2_BANDS)
    card = make_card(arch_params={"layers": 1, "width": 8}, tile_size=20, overlap=4)
    model = save_fake_model(tmp_path / "model.pt", card, seed=4)
    options = PredictOptions(batch_size=2, precision="fp32", smooth=5)
    result = predict(
        scene, tmp_path / "lc.gpkg", model=model, raster=tmp_path / "s.tif", options=options
    )
    with rasterio.open(tmp_path / "s.tif") as src:
        smoothed = src.read(1)
    expected = majority_filter(whole_image_classes(scene, model), 5)
    np.testing.assert_array_equal(smoothed, expected)
    assert (smoothed != whole_image_classes(scene, model)).any()  # it did something
    counts = np.bincount(expected[expected != NODATA_CLASS].ravel(), minlength=5)
    assert sum(result.class_pixels.values()) == counts.sum()


def _scaled_whole_image_logits(x: torch.Tensor, network: torch.nn.Module) -> torch.Tensor:
    """Logits of ``(1, C, H, W)`` (even sides) averaged over the scales of ``--tta scales``."""
    height, width = x.shape[-2:]
    half = torch.nn.functional.avg_pool2d(x, 2)
    up = torch.nn.functional.interpolate(
        x, size=(height * 3 // 2, width * 3 // 2), mode="bilinear", align_corners=False
    )
    from_half = torch.nn.functional.interpolate(
        network(half), size=(height, width), mode="bilinear", align_corners=False
    )
    from_up = torch.nn.functional.adaptive_avg_pool2d(network(up), (height, width))
    whole: torch.Tensor = network(x)
    return (whole + from_half + from_up) / 3


def test_scale_averaging_keeps_tiles_equal_to_the_whole_image(tmp_path: Path) -> None:
    from affine import Affine

    from geoseg.inference import grid_origin

    rng = np.random.default_rng(5)
    data = rng.integers(1, 4000, size=(6, 75, 69), dtype=np.uint16)
    # a first pixel at odd absolute rows and columns, and an odd tile size: only chips placed
    # on the even grid average the same 2 x 2 blocks as the whole image
    transform = Affine(10, 0, 10 * 43573, 0, -10, 10 * 417947)
    scene = write_raster(tmp_path / "scene.tif", data, transform=transform, descriptions=S2_BANDS)
    card = make_card(arch_params={"layers": 2, "width": 8}, tile_size=41, overlap=16)
    model_path = save_fake_model(tmp_path / "model.pt", card, seed=5)
    options = PredictOptions(batch_size=2, precision="fp32", tta="scales")
    predict(scene, None, model=model_path, raster=tmp_path / "tta.tif", options=options)
    with rasterio.open(tmp_path / "tta.tif") as src:
        tiled = src.read(1)
    model = load_model(model_path)
    x = _model_input(scene, model)
    # the whole image on the same even grid, with zeros around it as chips have beyond the scene
    row0, col0 = (v % 2 for v in grid_origin(transform))
    assert (row0, col0) == (1, 1)
    pad = 16
    padded = torch.zeros(6, 75 + 2 * pad + 2, 69 + 2 * pad + 2)
    top, left = pad + row0, pad + col0
    padded[:, top : top + 75, left : left + 69] = x
    with torch.inference_mode():
        logits = _scaled_whole_image_logits(padded[None], model.network)[0]
    logits = logits[:, top : top + 75, left : left + 69]
    reference = np.asarray(model.card.class_ids, np.uint8)[logits.argmax(0).numpy()]
    # the scene's outer pixels see the chips' edge (bilinear resampling clamps there)
    inner = (slice(6, -6), slice(6, -6))
    np.testing.assert_array_equal(tiled[inner], reference[inner])
    # scales change something: the check can fail
    plain = tmp_path / "plain.tif"
    predict(scene, None, model=model_path, raster=plain, options=PredictOptions(precision="fp32"))
    with rasterio.open(plain) as src:
        assert (src.read(1)[inner] != tiled[inner]).any()
