"""The Dynamic World v1 forward network, written as a PyTorch module of geoseg's own.

The architecture was read from the graph of the published TensorFlow SavedModel (Apache-2.0;
Dynamic World Project by Google with National Geographic and the World Resources Institute) and
its weights converted by ``scripts/convert_dynamic_world.py``. Every operation is local:

- a 3x3 convolution at full resolution, then an antialiased 2x downsampling (a separable
  triangle filter ``[1, 3, 3, 1] / 8`` renormalized at the image edge, as TensorFlow's
  ``ScaleAndTranslate`` with ``antialias=True`` computes it);
- three blocks of depthwise-separable convolutions at half resolution, each with a 1x1 skip
  branch, and a short side branch concatenated before the third;
- bilinear upsampling back to full resolution, an L2 norm over channels and a 1x1 classifier.

Every convolution is followed by batch norm (epsilon 1e-3) and Mish. The receptive field is a
radius of about 22 pixels, so tiles overlapping by 64 pixels stitch without seams, as long as
tiles start on even pixels (the downsampling's phase): the architecture's size multiple is 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ConvBN(nn.Module):
    """Convolution (with bias), batch norm, Mish."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, depthwise: bool = False) -> None:
        super().__init__()
        groups = cin if depthwise else 1
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(self.bn(self.conv(x)))

    def fold_batch_norm(self) -> None:
        """Fold the (eval-mode) batch norm into the convolution: same function, a pass less."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = torch.nn.utils.fusion.fuse_conv_bn_eval(self.conv, self.bn)
            self.bn = nn.Identity()


class _SeparableBlock(nn.Module):
    """Three (1x1, depthwise 3x3) pairs, plus a 1x1 skip branch added at the end."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            _ConvBN(cin, cout),
            _ConvBN(cout, cout, 3, depthwise=True),
            _ConvBN(cout, cout),
            _ConvBN(cout, cout, 3, depthwise=True),
            _ConvBN(cout, cout),
            _ConvBN(cout, cout, 3, depthwise=True),
        )
        self.skip = _ConvBN(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.main(x) + self.skip(x)
        return out


def mish(x: torch.Tensor) -> torch.Tensor:
    """Mish, ``x tanh(softplus(x))``, as ``x n / (n + 2)`` with ``n = e^x (e^x + 2)`` when faster.

    The two are the same function. ATen's bfloat16 Mish was over half of the network's time on a
    2-core CPU; the rational form, a few in-place bfloat16 passes, is 2.3x faster there (a
    144-channel 256 px map and a 64-channel 512 px map, heap allocations as in prediction), within
    2.6 units of bfloat16 rounding of the exact value (ATen's: half a unit). Elsewhere (float32,
    where it measured slower inside the network; CUDA; training) ATen's own kernel is used.
    """
    if x.dtype != torch.bfloat16 or x.device.type != "cpu" or x.requires_grad:
        return F.mish(x)
    # beyond 20, n / (n + 2) is 1 in bfloat16, and e^(2x) would overflow past 44
    n = x.clamp(max=20.0).exp_()
    denominator = n + 2
    n.mul_(denominator)
    torch.add(n, 2, out=denominator)
    return n.div_(denominator).mul_(x)


def antialiased_half(x: torch.Tensor) -> torch.Tensor:
    """Downsample by 2 with a triangle filter, renormalized where it overhangs the edge.

    Equals TensorFlow's ``tf.image.resize(x, (h // 2, w // 2), antialias=True)`` with the
    bilinear (triangle) kernel for even ``h`` and ``w``.

    >>> antialiased_half(torch.ones(1, 1, 4, 4)).flatten().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    channels = x.shape[1]
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype, device=x.device) / 8
    kernel = (taps[:, None] * taps[None, :]).expand(channels, 1, 4, 4)
    summed = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernel, stride=2, groups=channels)
    ones = torch.ones((1, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
    weight = F.conv2d(F.pad(ones, (1, 1, 1, 1)), kernel[:1], stride=2)
    return summed / weight


class DynamicWorldNet(nn.Module):
    """Dynamic World v1's forward network: logits ``(N, classes, H, W)``.

    Parameters
    ----------
    in_channels : int
        Input bands (9 for the published weights: blue, green, red, rededge1-3, nir, swir16,
        swir22, each log-sigmoid transformed, see :mod:`geoseg.normalization`).
    classes : int
        Output classes (9 for the published weights).
    """

    def __init__(self, in_channels: int = 9, classes: int = 9) -> None:
        super().__init__()
        self.stem = _ConvBN(in_channels, 64, 3)
        self.block1 = _SeparableBlock(64, 96)
        self.block2 = _SeparableBlock(96, 144)
        self.side = nn.Sequential(_ConvBN(64, 48), _ConvBN(48, 48, 3, depthwise=True))
        self.block3 = _SeparableBlock(144 + 48, 144)
        self.head = nn.Conv2d(144, classes, 1)

    def for_inference(self) -> DynamicWorldNet:
        """Ready for inference: every batch norm folded into its convolution, eval mode.

        Measured on a 2-core CPU: 2.15 s -> 1.60 s per 512 px tile in float32, the same logits
        to 4e-6. Training needs the batch norms: call this on a copy.
        """
        self.eval()
        for module in self.modules():
            if isinstance(module, _ConvBN):
                module.fold_batch_norm()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits at the input's resolution (an odd side is padded by one, then cut)."""
        height, width = x.shape[-2:]
        if height % 2 or width % 2:
            x = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
        full = self.stem(x)
        half = antialiased_half(full)
        deep = self.block2(self.block1(half))
        features = self.block3(torch.cat([deep, self.side(half)], dim=1))
        return normalized_head(features, self.head)[..., :height, :width]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel dot products over channels ``(N, H, W)``, in the features' own precision."""
    return (a * b).sum(dim=1)


def upsampled_squared_norm(features: torch.Tensor) -> torch.Tensor:
    """``|up(features)|^2`` per pixel, ``(N, 1, 2h, 2w)``, without forming the upsampled features.

    ``up`` is 2x bilinear upsampling (``align_corners=False``, edges clamped). Each upsampled
    vector is a weighted sum of a 2 x 2 block of source vectors, so its squared length is a
    quadratic form in their dot products: the squared lengths and the dot products with the right,
    lower and two diagonal neighbours, five one-channel maps at half resolution instead of every
    channel at full resolution. Replicate padding by one is the edge clamp.
    """
    h, w = features.shape[-2:]
    p = F.pad(features, (1, 1, 1, 1), mode="replicate")
    dtype = torch.promote_types(features.dtype, torch.float32)
    own = _dot(p, p).to(dtype)
    right = _dot(p[..., :, :-1], p[..., :, 1:]).to(dtype)
    down = _dot(p[..., :-1, :], p[..., 1:, :]).to(dtype)
    diagonals = _dot(p[..., :-1, :-1], p[..., 1:, 1:]) + _dot(p[..., :-1, 1:], p[..., 1:, :-1])
    diagonals = diagonals.to(dtype)
    out = own.new_empty((p.shape[0], 2 * h, 2 * w))
    # output pixel 2k + phase blends padded source k + phase (weight a) and k + phase + 1 (1 - a)
    for row_phase, a in ((0, 0.25), (1, 0.75)):
        r0, r1 = slice(row_phase, row_phase + h), slice(row_phase + 1, row_phase + 1 + h)
        for col_phase, b in ((0, 0.25), (1, 0.75)):
            c0, c1 = slice(col_phase, col_phase + w), slice(col_phase + 1, col_phase + 1 + w)
            bb, cc, bc = b * b, (1 - b) * (1 - b), 2 * b * (1 - b)
            top = bb * own[:, r0, c0] + cc * own[:, r0, c1] + bc * right[:, r0, c0]
            bottom = bb * own[:, r1, c0] + cc * own[:, r1, c1] + bc * right[:, r1, c0]
            across = bb * down[:, r0, c0] + cc * down[:, r0, c1] + 0.5 * bc * diagonals[:, r0, c0]
            blended = a * a * top + (1 - a) * (1 - a) * bottom + 2 * a * (1 - a) * across
            out[:, row_phase::2, col_phase::2] = blended
    return out.unsqueeze(1)


def normalized_head(features: torch.Tensor, head: nn.Conv2d) -> torch.Tensor:
    """``head(up / |up|)`` with ``up`` the features bilinearly upsampled 2x: float32 (or 64) logits.

    The 1x1 classifier is linear, so it is applied before upsampling (9 channels upsampled
    instead of 144) and the unit-length scaling after it, from
    :func:`upsampled_squared_norm`: the same function as upsampling, normalizing and classifying
    in turn (to 2e-7 in float32), 2x faster in float32 on the CPU and without the full-resolution
    144-channel tensors. Autocast is off inside, so the features' precision is kept throughout.
    """
    with torch.autocast(features.device.type, enabled=False):
        projected = F.conv2d(features, head.weight.to(features.dtype))
        size = (2 * features.shape[-2], 2 * features.shape[-1])
        up = F.interpolate(projected, size=size, mode="bilinear", align_corners=False)
        scale = upsampled_squared_norm(features).clamp_min(1e-12).rsqrt()
        bias = head.bias if head.bias is not None else torch.zeros(1, device=features.device)
        dtype = torch.promote_types(features.dtype, torch.float32)
        return up.to(dtype) * scale.to(dtype) + bias.to(dtype).view(1, -1, 1, 1)
