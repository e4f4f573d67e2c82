"""The Dynamic World network's faster forms compute the same function as the plain ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geoseg.models.dynamic_world import DynamicWorldNet, mish, normalized_head


def _plain_head(features: torch.Tensor, head: torch.nn.Conv2d) -> torch.Tensor:
    """Upsample every channel, scale each pixel's vector to unit length, classify."""
    size = (2 * features.shape[-2], 2 * features.shape[-1])
    up = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
    out: torch.Tensor = head(up * up.square().sum(dim=1, keepdim=True).clamp_min(1e-12).rsqrt())
    return out


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 2),
    channels=st.integers(2, 7),  # one channel: a sign, whose gradient is 0 or singular
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    offset=st.floats(-2.0, 2.0),
    seed=st.integers(0, 2**16),
)
def test_normalized_head_is_upsample_normalize_classify(
    batch: int, channels: int, height: int, width: int, offset: float, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)
    features = (features + offset).requires_grad_(True)
    head = torch.nn.Conv2d(channels, 3, 1).double()
    expected = _plain_head(features, head)
    got = normalized_head(features, head)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    # training goes through the same function: its gradients must be the plain form's too
    weights = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), features)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), features)
    scale = max(1.0, grad_expected.abs().max().item())
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-7, atol=1e-9 * scale)


def _bfloat16_units(value: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """``|value - exact|`` in units of bfloat16's last place at ``exact``."""
    exponent = torch.floor(torch.log2(exact.abs().clamp_min(1e-38)))
    return (value - exact).abs() / torch.exp2(exponent - 7)


def test_bfloat16_mish_within_three_units_of_rounding() -> None:
    x = torch.cat([torch.linspace(-60, 90, 60001), torch.randn(20000) * 4]).bfloat16()
    with torch.inference_mode():
        fast = mish(x.clone()).double()
    exact = F.mish(x.double())
    assert _bfloat16_units(fast, exact).max().item() < 3.0
    assert torch.isfinite(fast).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mish_is_atens_outside_cpu_bfloat16(dtype: torch.dtype) -> None:
    x = torch.linspace(-30, 30, 1001, dtype=dtype)
    assert torch.equal(mish(x), F.mish(x))
    trained = torch.linspace(-30, 30, 1001).bfloat16().requires_grad_(True)
    assert torch.equal(mish(trained), F.mish(trained))


@pytest.mark.parametrize(("height", "width"), [(18, 20), (17, 20), (18, 15)])
def test_network_keeps_the_input_size(height: int, width: int) -> None:
    torch.manual_seed(0)
    net = DynamicWorldNet(6, 9).for_inference()
    x = torch.rand(1, 6, height, width)
    with torch.inference_mode():
        out = net(x)
        # an odd side is the even one's result, cut: the padding does not reach back inside
        padded = net(F.pad(x, (0, width % 2, 0, height % 2), mode="replicate"))
    assert out.shape == (1, 9, height, width)
    torch.testing.assert_close(out, padded[..., :height, :width])
