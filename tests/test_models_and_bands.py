"""Model cards and files, the architecture registry, band matching and the config loader."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine
from conftest import S2_BANDS, make_card, save_fake_model, write_raster

from geoseg.bands import normalize_band_name, resolve_bands, scene_band_names
from geoseg.config import build_config, load_config
from geoseg.errors import BandMappingError, ConfigError, ModelError
from geoseg.models.architectures import (
    ARCHITECTURES,
    build_network,
    for_inference,
    get_architecture,
)
from geoseg.models.card import ClassInfo, ModelCard
from geoseg.models.loading import load_model, load_model_file, save_model_file


def test_card_round_trips_through_a_model_file(tmp_path: Path) -> None:
    path = save_fake_model(tmp_path / "m.pt", make_card(metrics={"miou": 0.5}))
    card, state, sha = load_model_file(path)
    assert card == make_card(metrics={"miou": 0.5})
    assert len(sha) == 64 and all(v.dtype != torch.float16 for v in state.values())
    loaded = load_model(path)
    assert loaded.sha256 == sha and not loaded.network.training


def test_weights_that_do_not_fit_the_card_are_a_model_error(tmp_path: Path) -> None:
    card = make_card()
    other = build_network("convnet", 3, 5, {"layers": 2, "width": 8})  # 3 inputs, card says 6
    save_model_file(tmp_path / "bad.pt", card, other.state_dict())
    with pytest.raises(ModelError, match="do not fit"):
        load_model(tmp_path / "bad.pt")


def test_card_rejects_bad_values() -> None:
    with pytest.raises(ModelError, match="outside 0-254"):
        ClassInfo(255, "nodata", "#000000")
    with pytest.raises(ModelError, match="color"):
        ClassInfo(1, "water", "blue")
    with pytest.raises(ModelError, match="duplicate"):
        make_card(classes=(ClassInfo(1, "a", "#000000"), ClassInfo(1, "b", "#ffffff")))
    with pytest.raises(ModelError, match="unknown keys"):
        ModelCard.from_dict({**make_card().to_dict(), "colour_scheme": "x"})


def example_network(name: str) -> tuple[torch.nn.Module, int]:
    """A small example of architecture ``name`` (6 bands, 5 classes, seeded) and a valid size."""
    params = {"encoder_name": "resnet18"} if name not in ("convnet", "segnet") else {}
    torch.manual_seed(0)
    return build_network(name, 6, 5, params), 2 * get_architecture(name).size_multiple(params)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_maps_bands_to_class_logits(name: str) -> None:
    network, size = example_network(name)
    with torch.inference_mode():
        out = network.eval()(torch.zeros(1, 6, size, size))
    assert out.shape == (1, 5, size, size)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_gives_the_same_logits_in_the_memory_format_it_runs_in(
    name: str,
) -> None:
    # inference runs channels-last where the architecture says it is faster: the function
    # must not change with the layout (float32; random weights and input, so no ties)
    network, size = example_network(name)
    network = for_inference(network)
    x = torch.rand(1, 6, size, size)
    last = copy.deepcopy(network).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = network(x)
        out = last(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_inference_folds_batch_norms_into_convolutions_without_changing_logits(
    name: str,
) -> None:
    network, size = example_network(name)
    for module in network.modules():  # trained-looking statistics, so folding matters
        if isinstance(module, torch.nn.BatchNorm2d):
            assert module.running_mean is not None and module.running_var is not None
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    network.eval()
    ready = for_inference(network)
    x = torch.rand(1, 6, size, size)
    with torch.inference_mode():
        torch.testing.assert_close(ready(x), network(x), rtol=1e-4, atol=1e-4)
    norms = [m for m in ready.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if name in ("unet", "pspnet", "fpn", "segnet", "dynamic_world"):
        assert not norms  # every one of them follows a convolution
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules()) or name == "convnet"


def test_unknown_architecture_lists_options() -> None:
    with pytest.raises(
        ModelError,
        match=(
            "available options are: convnet, deeplabv3plus, dynamic_world, fpn, pspnet, "
            "segnet, unet"
        ),
    ):
        get_architecture("segformer")


@pytest.mark.parametrize(
    ("description", "name"),
    [
        ("B02", "blue"),
        ("b4", "red"),
        ("B8", "nir"),
        ("B8A", "nir08"),
        ("SWIR1", "swir16"),
        ("Red", "red"),
        ("B12", "swir22"),
        ("Red Edge 1", "rededge1"),
        ("red_edge_3", "rededge3"),
        ("B05 - Vegetation red edge 1", "rededge1"),
        ("Vegetation red edge (B06)", "rededge2"),
        ("Band 5 Near Infrared", "nir"),
        ("Band 6 SWIR 1", "swir16"),
        ("B12 - SWIR 2.2", "swir22"),
        ("SWIR (1610 nm)", "swir16"),
        ("Red (665 nm)", "red"),
        ("0.842 um", "nir"),
        ("NIR narrow", "nir08"),
    ],
)
def test_band_names_normalize(description: str, name: str) -> None:
    assert normalize_band_name(description) == name


def test_bands_match_by_name_and_refuse_to_guess_an_order() -> None:
    described = (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    )
    match = resolve_bands(S2_BANDS, described)
    assert match.indexes == (2, 3, 4, 8, 12, 13)
    assert match.how == "names"
    # red-edge bands keep their own names: B05-B07 are rededge1-3, never confused
    assert resolve_bands(("rededge1", "rededge3"), described).indexes == (5, 7)
    # unnamed bands have no knowable order, whatever their count: refused, not guessed
    with pytest.raises(BandMappingError, match=r"no names .* pass --bands"):
        resolve_bands(S2_BANDS, (None,) * 6)
    with pytest.raises(BandMappingError, match=r"lack nir, swir16, swir22"):
        resolve_bands(S2_BANDS, ("blue", "green", "red", None))
    explicit = resolve_bands(("red", "green", "blue"), ("a", "b", "c"), ("3", "b", "1"))
    assert explicit.indexes == (3, 2, 1)
    assert explicit.how == "--bands"


def test_band_names_by_sensor_and_color() -> None:
    landsat = ("blue_B2", "green_B3", "red_B4", "nir_B5", "swir1_B6", "swir2_B7")
    assert resolve_bands(S2_BANDS, landsat).indexes == (1, 2, 3, 4, 5, 6)
    # a bare Landsat 8 band id is read in Landsat's numbering once the sensor is known
    bare = ("B2", "B3", "B4", "B5", "B6", "B7")
    assert resolve_bands(S2_BANDS, bare, sensor="landsat-oli").indexes == (1, 2, 3, 4, 5, 6)
    with pytest.raises(BandMappingError):  # as Sentinel-2 ids, B5-B7 are red-edge bands
        resolve_bands(S2_BANDS, bare)
    tm = ("B1", "B2", "B3", "B4", "B5", "B7")
    assert resolve_bands(S2_BANDS, tm, sensor="landsat-tm").indexes == (1, 2, 3, 4, 5, 6)
    # a photograph's color interpretation names its bands when descriptions do not
    rgb = resolve_bands(("red", "green", "blue"), (None,) * 3, colors=("blue", "green", "red"))
    assert rgb.indexes == (3, 2, 1)
    assert rgb.how == "colours"


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1


@dataclass(frozen=True)
class Outer:
    name: str
    steps: int = 10
    inner: Inner = Inner()
    tags: tuple[str, ...] = ()


def test_config_loader_checks_keys_and_types(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: run\nsteps: 5\ninner:\n  rate: 1\ntags: [a, b]\n")
    config = load_config(Outer, path, ["inner.rate=0.5"])
    assert config == Outer("run", 5, Inner(0.5), ("a", "b"))
    with pytest.raises(ConfigError, match=r"unknown key.*stepz"):
        build_config(Outer, {"name": "x", "stepz": 1})
    with pytest.raises(ConfigError, match=r"steps: expected an integer"):
        build_config(Outer, {"name": "x", "steps": "many"})
    with pytest.raises(ConfigError, match=r"inner.rate: expected a number"):
        build_config(Outer, {"name": "x", "inner": {"rate": True}})
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(Outer, path, ["steps"])


@pytest.mark.parametrize(
    ("descriptions", "names"),
    [
        # Landsat Collection 2 as STAC names it: its only near infrared is nir08
        (
            ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22"),
            ("coastal", "blue", "green", "red", "nir", "swir16", "swir22"),
        ),
        # a Sentinel-2 stack with both keeps B08 as nir and B8A as nir08
        (("B04", "B08", "B8A"), ("red", "nir", "nir08")),
    ],
)
def test_a_lone_nir08_is_the_near_infrared(
    descriptions: tuple[str, ...], names: tuple[str, ...]
) -> None:
    assert scene_band_names(descriptions) == (names, "names")


def test_red_edge_words_never_count_as_red() -> None:
    described = ("Blue", "Green", "Red", "Red Edge 1", "Red Edge 2", "Red Edge 3", "NIR")
    match = resolve_bands(("red", "rededge1", "rededge3", "nir"), described)
    assert match.indexes == (3, 4, 6, 7)


@pytest.mark.parametrize(
    ("descriptions", "model"),
    [
        (("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"), "landcover-s2-dw"),
        (
            (
                "Blue",
                "Green",
                "Red",
                "Red Edge 1",
                "Red Edge 2",
                "Red Edge 3",
                "NIR",
                "SWIR 1",
                "SWIR 2",
            ),
            "landcover-s2-dw",
        ),
        # Landsat Collection 2 with STAC's names
        (("coastal", "blue", "green", "red", "nir08", "swir16", "swir22"), "landcover-s2-dw6"),
        (("Red (665 nm)", "Green (560 nm)", "Blue (490 nm)", "NIR (842 nm)"), "landcover-rgbn-dw"),
        (("red", "green", "blue"), "landcover-rgb-dw"),
    ],
)
def test_the_default_model_is_the_first_whose_bands_the_scene_names(
    descriptions: tuple[str, ...], model: str
) -> None:
    from geoseg.models.loading import choose_default_model

    assert choose_default_model(descriptions).name == model


_S2_NINE = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")


@pytest.mark.parametrize(
    ("descriptions", "pixel_size", "model"),
    [
        (_S2_NINE, None, "landcover-s2-dw"),
        (_S2_NINE, 5.0, "landcover-s2-dw"),  # finer pixels are averaged down to 10 m
        (_S2_NINE, 10.4, "landcover-s2-dw"),  # a reprojected grid's rounding
        (_S2_NINE, 12.0, "landcover-s2-dw6"),  # Dynamic World already loses 0.1 mIoU at 11 m
        (_S2_NINE, 20.0, "landcover-s2-dw6"),  # a Sentinel-2 L2A 20 m stack
        (_S2_NINE, 60.0, "landcover-s2-dw6"),  # none trained that coarse: the coarsest
        (("red", "green", "blue"), 60.0, "landcover-rgb-dw"),
        (("red", "green", "blue"), 30.0, "landcover-rgb-dw"),  # the only one that fits
    ],
)
def test_a_scene_coarser_than_dynamic_world_was_trained_for_gets_a_student_trained_for_it(
    descriptions: tuple[str, ...],
    pixel_size: float | None,
    model: str,
) -> None:
    from geoseg.models.loading import choose_default_model

    choice = choose_default_model(descriptions, pixel_size_m=pixel_size)
    assert choice.name == model
    skipped = "is landcover-s2-dw, trained for pixels of 10 m at most"
    assert (skipped in choice.why) == (model == "landcover-s2-dw6")
    coarser_than_all = model == "landcover-rgb-dw" and pixel_size == 60.0
    assert ("none was trained for pixels as coarse" in choice.why) == coarser_than_all


def test_the_coarsest_pixels_a_model_holds_at_come_from_its_recipe() -> None:
    from geoseg.models.loading import embedded_model_paths, load_model_file

    coarsest = {
        name: load_model_file(path)[0].coarsest_gsd for name, path in embedded_model_paths().items()
    }
    # Dynamic World was trained on 10 m pixels; the students with resolution augmentation to 3x
    assert coarsest == {
        "landcover-s2-dw": 10.0,
        "landcover-s2-dw6": 30.0,
        "landcover-rgbn-dw": 30.0,
        "landcover-rgb-dw": 30.0,
    }
    assert make_card(gsd=None).coarsest_gsd is None
    assert make_card(gsd=None).holds_at(1000.0)


def test_a_20_m_sentinel2_stack_is_predicted_by_the_six_band_model(tmp_path: Path) -> None:
    from geoseg.config import PredictOptions
    from geoseg.pipeline import prepare
    from geoseg.radiometry import RadiometryRequest

    data = np.full((9, 24, 24), 1500, np.uint16)
    scene = write_raster(
        tmp_path / "s2_20m.tif",
        data,
        descriptions=_S2_NINE,
        transform=Affine(20.0, 0, 300000, 0, -20.0, 4000000),
    )
    options = PredictOptions(radiometry=RadiometryRequest(product="sentinel2-l1c"))
    run = prepare(scene, None, options)
    assert run.model.card.name == "landcover-s2-dw6"
    # the run report says why
    assert "the scene's are 20.0 m: landcover-s2-dw6" in run.decisions()["model"]
    ten = write_raster(tmp_path / "s2_10m.tif", data, descriptions=_S2_NINE)
    run = prepare(ten, None, options)
    assert run.model.card.name == "landcover-s2-dw"
    first = "no --model: the first embedded model whose bands the scene names"
    assert run.decisions()["model"] == first
    assert prepare(ten, "landcover-s2-dw6", options).decisions()["model"] == "given by the caller"


def test_a_batch_records_each_scenes_default_model_and_why(tmp_path: Path) -> None:
    import dataclasses
    import json

    from geoseg.batch import run_batch
    from geoseg.config import PredictOptions
    from geoseg.radiometry import RadiometryRequest

    folder = tmp_path / "scenes"
    folder.mkdir()
    data = np.full((9, 24, 24), 1500, np.uint16)
    twenty = Affine(20.0, 0, 300000, 0, -20.0, 4000000)
    write_raster(folder / "coarse.tif", data, descriptions=_S2_NINE, transform=twenty)
    write_raster(folder / "fine.tif", data, descriptions=_S2_NINE)
    options = PredictOptions(device="cpu", radiometry=RadiometryRequest(product="sentinel2-l1c"))
    report = run_batch(folder, tmp_path / "out", options=options, workers=0)
    assert report.ok, report.failures
    reasons = {}
    for name in ("coarse", "fine"):
        run_report = json.loads((tmp_path / "out" / f"{name}.report.json").read_text())
        reasons[name] = run_report["provenance"]["parameters"]["model"]
    # each scene's own reason, not "given by the caller" for the model the worker handed over
    assert "the scene's are 20.0 m: landcover-s2-dw6" in reasons["coarse"]
    assert reasons["fine"] == "no --model: the first embedded model whose bands the scene names"
    # with --bands, the model with that many bands, as predict picks it
    picked = dataclasses.replace(options, bands=("3", "2", "1"))
    report = run_batch(folder / "fine.tif", tmp_path / "rgb", options=picked, workers=0)
    assert report.ok, report.failures
    run_report = json.loads((tmp_path / "rgb" / "fine.report.json").read_text())
    assert run_report["provenance"]["model_name"] == "landcover-rgb-dw"


def test_a_band_count_no_model_takes_is_refused_in_one_line() -> None:
    from geoseg.models.loading import choose_default_model

    with pytest.raises(ModelError, match="--bands gives 2 bands and no embedded model takes 2"):
        choose_default_model(("blue", "green", "red", "nir"), requested_bands=2)
    assert choose_default_model((None,) * 9, requested_bands=4).name == "landcover-rgbn-dw"


def test_a_handed_over_model_is_left_as_it_was_and_a_run_s_own_is_readied_in_place(
    tmp_path: Path,
) -> None:
    from geoseg.inference import Predictor
    from geoseg.normalization import InputTransform
    from geoseg.radiometry import Radiometry

    card = make_card(architecture="segnet", arch_params={"widths": [8, 16]})
    transform = InputTransform(Radiometry((1e-4,) * 6, (0.0,) * 6, "test"), card.normalization)
    model = load_model(save_fake_model(tmp_path / "m.pt", card))

    def norms(network: torch.nn.Module) -> int:
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())

    before = norms(model.network)
    shared = Predictor(model, transform, torch.device("cpu"), precision="fp32")
    assert shared.network is not model.network and norms(shared.network) == 0
    assert norms(model.network) == before > 0  # the caller's network, untouched
    own = Predictor(model, transform, torch.device("cpu"), precision="fp32", own_network=True)
    assert own.network is model.network and norms(model.network) == 0  # one copy in memory


def test_a_band_named_twice_is_named_in_the_refusal() -> None:
    from geoseg.models.loading import choose_default_model

    with pytest.raises(ModelError, match=r"named blue, blue, red, nir \(blue more than once\)"):
        choose_default_model(("blue", "blue", "red", "nir"))


def test_a_two_date_stack_says_which_date_feeds_the_model(
    tmp_path: Path, fake_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from geoseg.config import PredictOptions
    from geoseg.pipeline import predict

    rng = np.random.default_rng(0)
    data = rng.integers(100, 3000, (12, 16, 16)).astype(np.uint16)
    six = ("blue", "green", "red", "nir", "swir16", "swir22")
    scene = write_raster(tmp_path / "two_dates.tif", data, descriptions=six + six)
    with caplog.at_level("WARNING", logger="geoseg"):
        predict(scene, None, model=fake_model, raster=tmp_path / "c.tif")
    assert "blue is scene bands 1, 7 (band 1 used)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="geoseg"):
        predict(
            scene,
            None,
            model=fake_model,
            raster=tmp_path / "c2.tif",
            options=PredictOptions(bands=("7", "8", "9", "10", "11", "12")),
        )
    assert "several scene bands have one name" not in caplog.text
