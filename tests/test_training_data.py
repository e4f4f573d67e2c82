"""Preparing labelled scenes and drawing patches: alignment, label maps, holdout, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import S2_BANDS, UTM_TRANSFORM, write_raster
from shapely.geometry import box

from geoseg.errors import BandMappingError, ConfigError, LabelError
from geoseg.io.labels import IGNORE, grid_of, label_column_of, rasterize_polygons
from geoseg.models.card import LANDCOVER_CLASSES, Normalization
from geoseg.training.config import AugmentConfig, HoldoutConfig, SceneConfig
from geoseg.training.datasets import PatchSampler
from geoseg.training.prepare import SceneData, class_lookup, group_probabilities, prepare_scene

H, W = 40, 48


@pytest.fixture
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.integers(100, 3000, size=(6, H, W), dtype=np.uint16)
    return write_raster(tmp_path / "img.tif", data, descriptions=S2_BANDS)


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    data = (np.arange(H * W).reshape(1, H, W) % 5).astype(np.uint8)
    data[0, :2] = 255
    return write_raster(tmp_path / "lab.tif", data, nodata=255)


# identity on reflectance, with a clip wide enough for the marker values the tests plant
WIDE = Normalization(clip=(-1000.0, 1000.0))


def prepare(spec: SceneConfig, tmp_path: Path, bands: tuple[str, ...] = S2_BANDS) -> SceneData:
    return prepare_scene(spec, bands, LANDCOVER_CLASSES, tmp_path / "work")


def test_prepare_aligns_and_converts_to_reflectance_like_prediction(
    image: Path, labels: Path, tmp_path: Path
) -> None:
    data = prepare(SceneConfig(name="s", image=str(image), labels=str(labels)), tmp_path)
    assert data.image.shape == (6, H, W) and data.labels.shape == (H, W)
    assert (data.labels[:2] == IGNORE).all()
    assert set(np.unique(data.labels[2:]).tolist()) == {0, 1, 2, 3, 4}
    # uint16 with nothing declared: reflectance x 10000, assumed and said so, as predict does
    raw = rasterio.open(image).read().astype(np.float32)
    np.testing.assert_allclose(data.image, raw * 1e-4, rtol=1e-6)
    assert data.radiometry.assumed and "x 10000" in data.radiometry.source
    # the recipe's product wins over the assumption
    spec = SceneConfig(name="s", image=str(image), labels=str(labels), product="reflectance-x1000")
    np.testing.assert_allclose(prepare(spec, tmp_path).image, raw * 1e-3, rtol=1e-6)


def test_label_map_and_ignore(image: Path, labels: Path, tmp_path: Path) -> None:
    spec = SceneConfig(
        name="s",
        image=str(image),
        labels=str(labels),
        label_map={"0": "water", "1": "water", "2": "ignore", "3": 0, "4": "other"},
    )
    data = prepare(spec, tmp_path)
    assert set(np.unique(data.labels).tolist()) == {0, 1, 4, IGNORE}


def test_label_map_to_unknown_class_is_label_error() -> None:
    with pytest.raises(LabelError, match="no model class"):
        class_lookup({"1": "glacier"}, LANDCOVER_CLASSES, ["1"])
    with pytest.raises(LabelError, match="give a label_map"):
        class_lookup({}, LANDCOVER_CLASSES, ["7"])


def test_band_files_are_stacked_onto_the_first_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    files = []
    for i in range(6):
        coarse = i >= 4  # like Sentinel-2's 20 m swir bands
        shape = (1, H // 2, W // 2) if coarse else (1, H, W)
        transform = UTM_TRANSFORM @ UTM_TRANSFORM.scale(2) if coarse else UTM_TRANSFORM
        files.append(
            str(
                write_raster(
                    tmp_path / f"b{i}.tif",
                    rng.integers(1, 1000, size=shape, dtype=np.uint16),
                    transform=transform,
                )
            )
        )
    lab = write_raster(tmp_path / "l.tif", np.ones((1, H, W), dtype=np.uint8))
    data = prepare(SceneConfig(name="st", band_files=tuple(files), labels=str(lab)), tmp_path)
    assert data.image.shape == (6, H, W)
    assert grid_of(data.image_path).width == W


def test_probabilities_are_grouped() -> None:
    probs = np.zeros((3, 1, 2), dtype=np.float32)
    probs[:, 0, 0] = [0.5, 0.3, 0.2]
    probs[:, 0, 1] = [0.0, 0.0, 1.0]
    lookup = {"0": 1, "1": 1, "2": IGNORE}
    grouped = group_probabilities(probs, lookup, 5)
    assert grouped[:, 0, 0].tolist() == pytest.approx([0, 1, 0, 0, 0])
    assert grouped[:, 0, 1].sum() == 0


def test_polygon_labels_are_rasterized(image: Path, tmp_path: Path) -> None:
    left, top = UTM_TRANSFORM.c, UTM_TRANSFORM.f
    frame = gpd.GeoDataFrame(
        {"name": ["water", "forest"]},
        geometry=[
            box(left, top - 100, left + 100, top),
            box(left + 200, top - 300, left + 300, top - 200),
        ],
        crs="EPSG:32618",
    ).to_crs("EPSG:4326")  # another CRS: reprojected onto the image grid
    path = tmp_path / "polys.gpkg"
    frame.to_file(path)
    codes, values = rasterize_polygons(path, "name", grid_of(image))
    assert values == ("forest", "water")
    assert (codes[:10, :10] == 1).mean() > 0.8
    assert (codes == IGNORE).mean() > 0.8
    data = prepare(
        SceneConfig(name="p", image=str(image), labels=str(path), label_column="name"), tmp_path
    )
    assert set(np.unique(data.labels).tolist()) == {1, 2, IGNORE}


def test_polygon_errors(image: Path, tmp_path: Path) -> None:
    path = tmp_path / "polys.gpkg"
    gpd.GeoDataFrame({"name": ["water"]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32618").to_file(
        path
    )
    with pytest.raises(LabelError, match="no column 'klass'; columns are: name"):
        rasterize_polygons(path, "klass", grid_of(image))
    with pytest.raises(LabelError, match="do not overlap the image"):
        rasterize_polygons(path, "name", grid_of(image))


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"id": [1], "Class": ["water"]}, "Class"),  # a class column among others, any case
        ({"id": [1], "label": ["water"]}, "label"),
        ({"kind": ["water"]}, "kind"),  # the only attribute
        ({"id": [1], "kind": ["water"]}, None),  # two, neither named as a class: ask
    ],
)
def test_the_class_column_is_found_where_the_file_leaves_no_doubt(
    image: Path, tmp_path: Path, columns: dict[str, list[Any]], expected: str | None
) -> None:
    left, top = UTM_TRANSFORM.c, UTM_TRANSFORM.f
    path = tmp_path / "polys.gpkg"
    gpd.GeoDataFrame(
        columns, geometry=[box(left, top - 100, left + 100, top)], crs="EPSG:32618"
    ).to_file(path)
    spec = SceneConfig(name="p", image=str(image), labels=str(path))
    if expected is None:
        with pytest.raises(LabelError, match="--label-column \\(columns: id, kind\\)"):
            prepare(spec, tmp_path)
        return
    assert label_column_of(path) == expected
    data = prepare(spec, tmp_path)
    assert set(np.unique(data.labels).tolist()) == {1, IGNORE}  # water, as the column says


def test_raster_labels_elsewhere_are_label_error(image: Path, tmp_path: Path) -> None:
    far = write_raster(
        tmp_path / "far.tif",
        np.ones((1, H, W), dtype=np.uint8),
        transform=UTM_TRANSFORM @ UTM_TRANSFORM.translation(10_000, 0),
    )
    with pytest.raises(LabelError, match="do not overlap"):
        prepare(SceneConfig(name="s", image=str(image), labels=str(far)), tmp_path)


def test_no_labelled_pixel_is_label_error(image: Path, tmp_path: Path) -> None:
    empty = write_raster(tmp_path / "e.tif", np.full((1, H, W), 255, np.uint8), nodata=255)
    with pytest.raises(LabelError, match="no pixel is labelled"):
        prepare(SceneConfig(name="s", image=str(image), labels=str(empty)), tmp_path)


def test_missing_bands_is_band_mapping_error(labels: Path, tmp_path: Path) -> None:
    rgb = write_raster(
        tmp_path / "rgb.tif",
        np.ones((3, H, W), dtype=np.uint16),
        descriptions=("red", "green", "blue"),
    )
    with pytest.raises(BandMappingError):
        prepare(SceneConfig(name="s", image=str(rgb), labels=str(labels)), tmp_path)
    with pytest.raises(ConfigError, match="band_files"):
        prepare(SceneConfig(name="s", band_files=("a.tif",), labels=str(labels)), tmp_path)


def test_patches_never_touch_the_holdout(image: Path, labels: Path, tmp_path: Path) -> None:
    spec = SceneConfig(
        name="s", image=str(image), labels=str(labels), holdout=HoldoutConfig(rows=(24, 40))
    )
    data = prepare(spec, tmp_path)
    # mark the holdout so any patch that reads it is detectable
    data.image[:, 24:] = 99.0
    aug = AugmentConfig(zoom_probability=0.5, zoom_range=(0.5, 1.5))
    sampler = PatchSampler([data], 16, aug, WIDE, S2_BANDS, focus_classes=[0], seed=3)
    for step in range(30):
        batch = sampler.batch(step, 4)
        assert batch.image.shape == (4, 6, 16, 16)
        assert float(batch.image.max()) < 99.0
    # the same step gives the same batch (resumable, deterministic)
    assert np.array_equal(sampler.batch(7, 4).image.numpy(), sampler.batch(7, 4).image.numpy())
    assert batch.soft is None


def test_torchgeo_datasets_join_image_and_labels_and_hold_out(image: Path, labels: Path) -> None:
    from geoseg.training.datasets import geo_datasets

    left, top = UTM_TRANSFORM.c, UTM_TRANSFORM.f
    # hold out the eastern quarter of the 48 x 40 px scene
    holdout = (left + 360.0, top - 400.0, left + 480.0, top)
    parts = geo_datasets(str(image), str(labels), holdout, patch_size=8, length=20)
    dataset = parts["dataset"]
    for query in parts["train_sampler"]:
        sample = dataset[query]
        assert sample["image"].shape == (6, 8, 8) and sample["mask"].shape[-2:] == (8, 8)
        assert query[0].stop <= left + 360.0 + 1e-6  # never inside the holdout
    val = list(parts["val_sampler"])
    assert val and all(q[0].start >= left + 360.0 - 1e-6 for q in val)


def _locate(patch: np.ndarray, image: np.ndarray) -> tuple[int, int]:
    """Where an un-augmented patch sits in the image (brute force over every offset)."""
    size = patch.shape[-1]
    for row in range(image.shape[1] - size + 1):
        for col in range(image.shape[2] - size + 1):
            if np.array_equal(image[:, row : row + size, col : col + size], patch):
                return row, col
    raise AssertionError("patch not found in the image")


def test_torchgeo_sampler_reads_aligned_patches_outside_the_holdout(
    image: Path, labels: Path, tmp_path: Path
) -> None:
    from geoseg.training.datasets import GeoPatchSampler

    spec = SceneConfig(
        name="s", image=str(image), labels=str(labels), holdout=HoldoutConfig(rows=(24, 40))
    )
    data = prepare(spec, tmp_path)
    plain = AugmentConfig(flips=False, rot90=False, zoom_probability=0.0)
    sampler = GeoPatchSampler([data], tmp_path / "geo", 8, plain, WIDE, S2_BANDS, seed=5)
    rows = set()
    for step in range(6):
        batch = sampler.batch(step, 3)
        assert batch.image.shape == (3, 6, 8, 8) and batch.labels.shape == (3, 8, 8)
        for x, y in zip(batch.image.numpy(), batch.labels.numpy(), strict=True):
            row, col = _locate(x, data.image.astype(np.float32))
            rows.add(row)
            assert row + 8 <= 24  # never inside the held-out rows
            assert np.array_equal(y, data.labels[row : row + 8, col : col + 8])
    assert len(rows) > 1  # random positions, not one fixed patch
    # the batch of a step depends only on (seed, step): resumable and deterministic
    again = GeoPatchSampler([data], tmp_path / "geo2", 8, plain, WIDE, S2_BANDS, seed=5)
    assert np.array_equal(sampler.batch(4, 3).image.numpy(), again.batch(4, 3).image.numpy())


def test_radiometric_augmentation_acts_on_reflectance(
    image: Path, labels: Path, tmp_path: Path
) -> None:
    data = prepare(SceneConfig(name="s", image=str(image), labels=str(labels)), tmp_path)
    fixed = AugmentConfig(flips=False, rot90=False, gain_range=(2.0, 2.0))
    sampler = PatchSampler([data], 8, fixed, WIDE, S2_BANDS, seed=1)
    x = sampler.batch(0, 1).image[0].numpy()
    plain = PatchSampler(
        [data], 8, AugmentConfig(flips=False, rot90=False), WIDE, S2_BANDS, seed=1
    ).batch(0, 1)
    # the same patch, every band's reflectance doubled
    np.testing.assert_allclose(x, 2 * plain.image[0].numpy(), rtol=1e-5)
    hazy = AugmentConfig(flips=False, rot90=False, haze_probability=1.0, haze_range=(0.02, 0.05))
    y = PatchSampler([data], 8, hazy, WIDE, S2_BANDS, seed=1).batch(0, 1).image[0].numpy()
    shift = (y - plain.image[0].numpy()).mean(axis=(1, 2))
    # haze is one additive term per band, largest in blue and smallest in swir22
    assert abs(shift[0]) > abs(shift[3]) > abs(shift[5]) and abs(shift[0]) > 0


def test_reviewed_polygons_of_a_geoseg_map_are_the_labels(
    image: Path, tmp_path: Path, fake_model: Path
) -> None:
    """The review loop's data path: predict, correct and tick some polygons, train on those."""
    import sqlite3

    from geoseg.pipeline import PredictOptions, predict

    gpkg = tmp_path / "map.gpkg"
    options = PredictOptions(min_area_m2=0, simplify_m=0)
    predict(image, gpkg, model=fake_model, options=options)
    polygons = gpd.read_file(gpkg, layer="landcover")
    assert not polygons["reviewed"].any()  # written unchecked
    # an analyst corrects two polygons to water in QGIS and ticks them
    checked = polygons.index[:2]
    with sqlite3.connect(gpkg) as db:
        # QGIS edits through GDAL; sqlite3 has no spatial functions: leave the geometry alone
        db.execute("DROP TRIGGER IF EXISTS rtree_landcover_geom_update3")
        db.execute("DROP TRIGGER IF EXISTS rtree_landcover_geom_update4")
        fids = [int(f) for f in pyogrio_fids(gpkg)[:2]]
        db.executemany(
            "UPDATE landcover SET class_name = 'water', reviewed = 1 WHERE fid = ?",
            [(f,) for f in fids],
        )
    spec = SceneConfig(
        name="reviewed",
        image=str(image),
        labels=str(gpkg),
        label_column="class_name",
        label_filter="reviewed",
    )
    data = prepare(spec, tmp_path)
    water = [c.id for c in LANDCOVER_CLASSES].index(1)
    labelled = data.labels != IGNORE
    # only the ticked polygons are labels, and they say what the analyst said
    assert labelled.any() and set(np.unique(data.labels[labelled]).tolist()) == {water}
    assert labelled.sum() <= polygons.loc[checked].area.sum() / 100 + 1
    # a filter column that is not there, or nothing ticked: clear errors, not an empty set
    with pytest.raises(LabelError, match="no column 'checked'"):
        rasterize_polygons(gpkg, "class_name", grid_of(image), where="checked")
    fresh = tmp_path / "fresh.gpkg"
    predict(image, fresh, model=fake_model, options=options)
    with pytest.raises(LabelError, match="has reviewed set"):
        rasterize_polygons(fresh, "class_name", grid_of(image), where="reviewed")


def pyogrio_fids(path: Path) -> list[int]:
    import pyogrio

    fids: list[int] = pyogrio.read_dataframe(
        path, layer="landcover", fid_as_index=True
    ).index.tolist()
    return fids


def test_a_resampled_scene_keeps_what_its_file_says_about_its_values(
    labels: Path, tmp_path: Path
) -> None:
    # a 30 m Landsat C2 Level-2 scene trained at 10 m: the product is known from the file's name,
    # which the resampled copy in the work folder does not carry; reflectance must not change
    rng = np.random.default_rng(1)
    data = rng.integers(8000, 20000, size=(6, H, W), dtype=np.uint16)
    thirty = Affine(30, 0, 400000, 0, -30, 4000000)
    name = "LC08_L2SP_017051_20151205_20200908_02_T1_SR.tif"
    scene = write_raster(tmp_path / name, data, descriptions=S2_BANDS, transform=thirty)
    spec = SceneConfig(name="l8", image=str(scene), labels=str(labels))
    prepared = prepare_scene(spec, S2_BANDS, LANDCOVER_CLASSES, tmp_path / "work", gsd=10.0)
    assert "L2SP by its file name" in prepared.radiometry.source
    assert prepared.image.shape == (6, 3 * H, 3 * W)
    raw = np.repeat(np.repeat(data.astype(np.float32), 3, axis=1), 3, axis=2)
    np.testing.assert_allclose(prepared.image, raw * 2.75e-5 - 0.2, rtol=1e-5, atol=1e-6)


def test_radiometric_probability_leaves_some_patches_as_they_are(
    image: Path, labels: Path, tmp_path: Path
) -> None:
    data = prepare(SceneConfig(name="s", image=str(image), labels=str(labels)), tmp_path)

    def first_patch(**augment: Any) -> np.ndarray:
        config = AugmentConfig(flips=False, rot90=False, gain_range=(2.0, 2.0), **augment)
        return PatchSampler([data], 8, config, WIDE, S2_BANDS, seed=1).batch(0, 1).image[0].numpy()

    doubled, kept = first_patch(), first_patch(radiometric_probability=0.0)
    np.testing.assert_allclose(doubled, 2 * kept, rtol=1e-5)
    assert np.abs(kept).max() > 0
    with pytest.raises(ConfigError, match="radiometric_probability"):
        AugmentConfig(radiometric_probability=1.5)
