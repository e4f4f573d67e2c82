"""Vectorize: exact round trip, planar partition, seam merging, sieving and ground areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from class_raster_helpers import UTM, UTM_TRANSFORM, blocky_labels
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.features import rasterize, shapes

from geoseg.config import VectorizeOptions
from geoseg.core import Grid
from geoseg.vectorize import (
    Polygons,
    array_reader,
    ground_area_m2,
    join_batches,
    node_pixel_coverage,
    pixel_area_m2,
    polygon_batches,
    sieve_threshold,
    vectorize_array,
)

PIXEL_M2 = 100.0  # UTM_TRANSFORM's 10 m pixels (planar)


@st.composite
def label_maps(draw: st.DrawFn) -> np.ndarray:
    """Small label maps with structure (upsampled cells) and scattered nodata."""
    rows = draw(st.integers(1, 12))
    cols = draw(st.integers(1, 12))
    cell = draw(st.integers(1, 4))
    values = draw(
        st.lists(st.sampled_from([0, 1, 2, 3, 255]), min_size=rows * cols, max_size=rows * cols)
    )
    coarse = np.array(values, dtype=np.uint8).reshape(rows, cols)
    labels = np.kron(coarse, np.ones((cell, cell), dtype=np.uint8))
    specks = draw(st.lists(st.tuples(st.integers(0, 47), st.integers(0, 47)), max_size=12))
    for r, c in specks:
        if r < labels.shape[0] and c < labels.shape[1]:
            labels[r, c] = draw(st.sampled_from([0, 1, 255]))
    return labels


def _valid_region(labels: np.ndarray) -> shapely.Geometry:
    valid = (labels != 255).astype(np.uint8)
    parts = [
        shapely.geometry.shape(g)
        for g, v in shapes(valid, mask=valid.astype(bool), transform=UTM_TRANSFORM)
    ]
    return shapely.union_all(parts)


def _canonical(geoms: np.ndarray, ids: np.ndarray) -> list[tuple[int, bytes]]:
    """Order- and vertex-noise-free form: drop collinear vertices, normalize, sort."""
    clean = shapely.normalize(shapely.simplify(geoms, 0.0))
    return sorted(zip(ids.tolist(), shapely.to_wkb(clean).tolist(), strict=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=label_maps(), block=st.sampled_from([16, 2048]))
def test_round_trip_is_exact_without_sieve_or_simplify(labels: np.ndarray, block: int) -> None:
    result = vectorize_array(
        labels, UTM_TRANSFORM, UTM, min_area_m2=0, simplify_m=0, block_size=block
    )
    assert shapely.is_valid(result.geometries).all()
    assert set(shapely.get_type_id(result.geometries).tolist()) <= {3}
    if (labels == 255).all():
        assert len(result.geometries) == 0
        return
    back = rasterize(
        zip(result.geometries, result.class_ids.tolist(), strict=True),
        out_shape=labels.shape,
        transform=UTM_TRANSFORM,
        fill=255,
        dtype="uint8",
    )
    np.testing.assert_array_equal(back, labels)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=label_maps(),
    block=st.sampled_from([16, 2048]),
    simplify=st.floats(5.0, 40.0),
    min_area=st.sampled_from([0.0, 250.0, 900.0]),
)
def test_simplified_polygons_partition_the_valid_area(
    labels: np.ndarray, block: int, simplify: float, min_area: float
) -> None:
    result = vectorize_array(
        labels, UTM_TRANSFORM, UTM, min_area_m2=min_area, simplify_m=simplify, block_size=block
    )
    geoms = result.geometries
    assert shapely.is_valid(geoms).all()
    valid_area = float((labels != 255).sum()) * PIXEL_M2
    if valid_area == 0:
        assert len(geoms) == 0
        return
    union = shapely.union_all(geoms)
    # no gaps: the union covers the valid area; no overlaps: the parts add up to the union
    assert union.area == pytest.approx(valid_area, rel=1e-3)
    assert shapely.area(geoms).sum() == pytest.approx(union.area, rel=1e-9)
    # nothing over nodata
    assert union.difference(_valid_region(labels)).area == pytest.approx(0.0, abs=1e-6)
    # shared edges are shared vertex for vertex
    assert shapely.coverage_is_valid(geoms)


@pytest.mark.parametrize("seed", range(4))
def test_small_blocks_give_the_one_block_result(seed: int) -> None:
    labels = blocky_labels(seed, (70, 53), cell=5)
    one = vectorize_array(labels, UTM_TRANSFORM, UTM, min_area_m2=0, simplify_m=0, block_size=2048)
    many = vectorize_array(labels, UTM_TRANSFORM, UTM, min_area_m2=0, simplify_m=0, block_size=16)
    assert _canonical(many.geometries, many.class_ids) == _canonical(one.geometries, one.class_ids)
    # seam vertices left on straight edges move ground areas by < 1e-5 (UTM lines vs lon/lat)
    assert many.area_m2.sum() == pytest.approx(one.area_m2.sum(), rel=1e-6)


def test_polygon_spanning_many_blocks_is_one_feature() -> None:
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[20:40, 20:40] = 1  # crosses the seams at 32 in both directions
    labels[:, 60:] = 255
    for simplify in (0.0, 10.0):
        result = vectorize_array(
            labels, UTM_TRANSFORM, UTM, min_area_m2=0, simplify_m=simplify, block_size=16
        )
        assert sorted(result.class_ids.tolist()) == [0, 1]
        inner = result.geometries[result.class_ids == 1][0]
        assert inner.area == pytest.approx(400 * PIXEL_M2)
        outer = result.geometries[result.class_ids == 0][0]
        assert len(outer.interiors) == 1


def test_sieve_removes_specks_but_never_touches_nodata() -> None:
    labels = np.ones((40, 40), dtype=np.uint8)
    labels[5:7, 5:7] = 2  # 4-pixel speck
    labels[14:18, 14:18] = 255  # 16-pixel nodata hole
    labels[30, 30] = 255  # 1-pixel nodata speck
    labels[15:17, 31:33] = 3  # speck across the seam at 32 (block 16): seen whole via the halo
    labels[0:10, 20:30] = 0  # 100-pixel region: kept
    result = vectorize_array(
        labels, UTM_TRANSFORM, UTM, min_area_m2=5 * PIXEL_M2, simplify_m=0, block_size=16
    )
    assert sorted(set(result.class_ids.tolist())) == [0, 1]
    back = rasterize(
        zip(result.geometries, result.class_ids.tolist(), strict=True),
        out_shape=labels.shape,
        transform=UTM_TRANSFORM,
        fill=255,
        dtype="uint8",
    )
    np.testing.assert_array_equal(back == 255, labels == 255)
    assert (back[labels == 0] == 0).all()


def test_sieve_threshold_is_a_ground_area() -> None:
    assert sieve_threshold(2500.0, 100.0) == 25
    assert sieve_threshold(0.0, 100.0) == 1
    assert sieve_threshold(50.0, 100.0) == 1
    # the same area in a geographic CRS: 0.0001 degree pixels are about 11 m x 11 m at the equator
    equator = pixel_area_m2("EPSG:4326", Affine(1e-4, 0, 0, 0, -1e-4, 0.5), 0, 0)
    assert equator == pytest.approx(123.6, rel=1e-2)


def test_ground_area_matches_geodesic_area_in_utm() -> None:
    square = shapely.box(400000, 4000000, 401000, 4001000)  # 1 km x 1 km, off the central meridian
    area = ground_area_m2(np.array([square], dtype=object), UTM)[0]
    to_lonlat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    dense = shapely.segmentize(square, 1.0)
    lonlat = shapely.transform(dense, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
    reference, _ = Geod(ellps="WGS84").geometry_area_perimeter(lonlat)
    assert area == pytest.approx(abs(reference), rel=1e-6)
    assert area != pytest.approx(square.area, rel=1e-5)  # scale factor 0.9996 is not ignored


def test_ground_area_of_a_geographic_cell_with_a_hole() -> None:
    cell = shapely.Polygon(
        [(10, 60), (11, 60), (11, 61), (10, 61)], holes=[[(10.2, 60.2), (10.2, 60.4), (10.4, 60.4)]]
    )
    area = ground_area_m2(np.array([cell], dtype=object), "EPSG:4326")[0]
    geod = Geod(ellps="WGS84")
    # geodesic edges differ from parallels: densify so Geod follows the parallels too
    dense = shapely.segmentize(cell, 0.001)
    reference, _ = geod.geometry_area_perimeter(dense)
    assert area == pytest.approx(abs(reference), rel=1e-6)


def test_geographic_areas_shrink_towards_the_pole() -> None:
    labels = np.zeros((90, 4), dtype=np.uint8)
    transform = Affine(1.0, 0, 0, 0, -1.0, 90.0)  # 1-degree rows from the pole to the equator
    result = vectorize_array(labels, transform, "EPSG:4326", min_area_m2=0, simplify_m=0)
    # a quarter of a 4-degree lune of the northern hemisphere: 4/360 of half of the WGS84 surface
    assert result.area_m2.sum() == pytest.approx(510_065_621_724_088.5 / 2 * 4 / 360, rel=1e-9)


def test_node_pixel_coverage_inserts_t_junctions_and_densifies_seams() -> None:
    top = shapely.box(0, 0, 4, 2)  # its bottom edge runs straight past the junction at (2, 2)
    left, right = shapely.box(0, 2, 2, 4), shapely.box(2, 2, 4, 4)
    geoms = np.array([top, left, right], dtype=object)
    assert not shapely.coverage_is_valid(geoms)
    noded = node_pixel_coverage(geoms)
    assert shapely.equals(noded, geoms).all()
    assert shapely.coverage_is_valid(noded)
    assert (2.0, 2.0) in set(map(tuple, shapely.get_coordinates(noded[0]).tolist()))
    # an edge on an internal seam (column 4) gets a vertex at every pixel corner
    seamed = node_pixel_coverage(geoms, (np.array([4]), np.array([], dtype=np.int64)))
    on_seam = {tuple(c) for c in shapely.get_coordinates(seamed[2]).tolist() if c[0] == 4}
    assert on_seam == {(4.0, 2.0), (4.0, 3.0), (4.0, 4.0)}


def _batches(labels: np.ndarray, block: int, simplify_m: float) -> list[Polygons]:
    rows, cols = labels.shape
    return list(
        polygon_batches(
            array_reader(labels),
            Grid(CRS.from_user_input(UTM), UTM_TRANSFORM, cols, rows),
            VectorizeOptions(min_area_m2=0, simplify_m=simplify_m, block_size=block, workers=1),
        )
    )


@pytest.mark.parametrize("simplify_m", [0.0, 10.0])
def test_polygons_are_delivered_with_the_row_of_blocks_that_completes_them(
    simplify_m: float,
) -> None:
    labels = np.zeros((64, 40), dtype=np.uint8)
    labels[2:6, 2:6] = 1  # inside block row 0
    labels[10:40, 20:30] = 2  # cut by the seams below block rows 0 and 1: complete in row 2
    labels[50:60, 2:8] = 3  # inside block row 3
    batches = _batches(labels, 16, simplify_m)
    assert len(batches) == 4  # one per row of blocks
    per_batch = [sorted(b.class_ids.tolist()) for b in batches]
    assert per_batch[0] == [1]
    assert per_batch[1] == []
    assert per_batch[2] == [2]
    assert per_batch[3] == [0, 3]  # class 0 spans every row, the background of all
    assert sum(b.valid_pixels for b in batches) == labels.size
    # the polygon cut by two seams is one feature, whole
    middle = batches[2].geometries[0]
    assert middle.area == pytest.approx(30 * 10 * PIXEL_M2)
    joined = join_batches(batches)
    whole = vectorize_array(labels, UTM_TRANSFORM, UTM, min_area_m2=0, simplify_m=simplify_m)
    assert _canonical(joined.geometries, joined.class_ids) == _canonical(
        whole.geometries, whole.class_ids
    )
