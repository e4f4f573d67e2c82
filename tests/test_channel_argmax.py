"""The fast channel argmax is torch's argmax, ties included."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.inference import channel_argmax


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 9).flatmap(
        lambda channels: arrays(
            np.float32,
            st.tuples(st.integers(1, 2), st.just(channels), st.integers(1, 6), st.integers(1, 6)),
            # few distinct values, so equal maxima (ties) are common
            elements=st.sampled_from([-1.5, 0.0, 0.25, 0.25, 3.0]),
        )
    )
)
def test_channel_argmax_is_argmax(scores: np.ndarray) -> None:
    tensor = torch.from_numpy(scores)
    assert torch.equal(channel_argmax(tensor), tensor.argmax(dim=1))
