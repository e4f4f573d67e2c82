"""The fast channel argmax is torch's argmax, ties included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import make_card, save_fake_model
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geoseg.inference import Chips, Predictor, channel_argmax


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
    expected = tensor.argmax(dim=1)
    assert torch.equal(channel_argmax(tensor), expected)
    # the narrow ids the predictor uses are the same numbers
    narrow = channel_argmax(tensor, torch.uint8)
    assert narrow.dtype == torch.uint8 and torch.equal(narrow.long(), expected)


def test_predictor_maps_channels_to_the_cards_class_ids(tmp_path: Path) -> None:
    from geoseg.core import ClassInfo
    from geoseg.models.loading import load_model
    from geoseg.normalization import InputTransform
    from geoseg.radiometry import Radiometry

    classes = (ClassInfo(3, "sand", "#eeddaa"), ClassInfo(7, "rock", "#777777"))
    card = make_card(bands=("red", "green", "blue"), classes=classes)
    model = load_model(save_fake_model(tmp_path / "m.pt", card))
    transform = InputTransform(Radiometry((1e-4,) * 3, (0.0,) * 3, "test"), card.normalization)
    predictor = Predictor(model, transform, torch.device("cpu"), precision="fp32")
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, size=(2, 3, 16, 16), dtype=np.uint16)
    valid = rng.random((2, 16, 16)) > 0.2
    ids = predictor.classify(Chips(data, valid))
    channels = predictor.logits(Chips(data, valid)).argmax(dim=1).numpy()
    expected = np.where(valid, np.array([3, 7], dtype=np.uint8)[channels], 255)
    np.testing.assert_array_equal(ids, expected)
