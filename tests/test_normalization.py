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
