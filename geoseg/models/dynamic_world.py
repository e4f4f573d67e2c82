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
        out: torch.Tensor = F.mish(self.bn(self.conv(x)))
        return out

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
    """Dynamic World v1's forward network: logits ``(N, classes, H, W)`` for even ``H``, ``W``.

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
        """Return logits at the input's resolution."""
        full = self.stem(x)
        half = antialiased_half(full)
        deep = self.block2(self.block1(half))
        features = self.block3(torch.cat([deep, self.side(half)], dim=1))
        up = F.interpolate(features, size=x.shape[-2:], mode="bilinear", align_corners=False)
        # an L2 norm over channels: each pixel's feature vector has unit length
        norm = up.square().sum(dim=1, keepdim=True).clamp_min(1e-12).rsqrt()
        out: torch.Tensor = self.head(up * norm)
        return out
