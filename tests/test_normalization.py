"""The model input is the card's documented function of reflectance, per pixel."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.models.card import Normalization
from geoseg.normalization import normalize_reflectance

DYNAMIC_WORLD_LIKE = Normalization(method="log_sigmoid", mean=(1.7, 1.9, 2.1), std=(0.6, 0.5, 0.7))


def _documented(reflectance: np.ndarray, norm: Normalization) -> np.ndarray:
    """sigmoid(scale * (log(1 + gain * max(r, 0)) - mean) / std + offset), in float64."""
    shape = (1, -1, 1, 1)
    mean = np.asarray(norm.mean, np.float64).reshape(shape)
    std = np.asarray(norm.std, np.float64).reshape(shape)
    logged = np.log1p(norm.log_gain * np.maximum(reflectance.astype(np.float64), 0.0))
    z = norm.sigmoid_scale * (logged - mean) / std + norm.sigmoid_offset
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 2), st.just(3), st.integers(1, 5), st.integers(1, 5)),
        # negative (over-corrected water), ordinary and saturated reflectance
        elements=st.floats(-0.25, 1.5, width=32),
    )
)
def test_log_sigmoid_input_is_the_documented_function(reflectance: np.ndarray) -> None:
    tensor = torch.from_numpy(reflectance.copy())
    got = normalize_reflectance(tensor, DYNAMIC_WORLD_LIKE).numpy()
    np.testing.assert_allclose(got, _documented(reflectance, DYNAMIC_WORLD_LIKE), atol=2e-6)
    # computed in place on copies only: the caller's reflectance is untouched
    np.testing.assert_array_equal(tensor.numpy(), reflectance)


STANDARD = Normalization(method="standard", mean=(0.1, 0.2, 0.3), std=(0.05, 0.1, 0.2))


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int16]),
    norm=st.sampled_from([DYNAMIC_WORLD_LIKE, STANDARD]),
    scale=st.floats(1e-5, 1e-2),
    offset=st.floats(-0.2, 0.1),
    seed=st.integers(0, 2**16),
)
def test_integer_chips_looked_up_get_the_transform_s_own_values(
    dtype: type, norm: Normalization, scale: float, offset: float, seed: int
) -> None:
    from geoseg.normalization import InputTransform
    from geoseg.radiometry import Radiometry

    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    raw: np.ndarray = rng.integers(info.min, info.max, size=(2, 3, 7, 9), endpoint=True).astype(
        dtype
    )
    raw[0, :, 0, :3] = (info.min, 0, info.max)  # the ends of the range and zero
    radiometry = Radiometry((scale, scale * 2, scale), (offset, 0.0, offset), "a test")
    transform = InputTransform(radiometry, norm)
    looked_up = transform.apply_by_table(raw)
    assert looked_up is not None and looked_up.dtype == np.float32
    computed = transform.apply_torch(torch.from_numpy(raw.astype(np.float32))).numpy()
    # the same function; a value can land one unit in the last place apart, as ATen's
    # vectorised and scalar (tail) log and sigmoid round it
    np.testing.assert_allclose(looked_up, computed, rtol=2.4e-7, atol=1e-12)


def test_other_types_are_not_looked_up() -> None:
    from geoseg.normalization import InputTransform
    from geoseg.radiometry import Radiometry

    transform = InputTransform(Radiometry((1.0,) * 3, (0.0,) * 3, "a test"), STANDARD)
    for dtype in (np.float32, np.uint32, np.int32):
        assert transform.apply_by_table(np.zeros((1, 3, 2, 2), dtype)) is None
