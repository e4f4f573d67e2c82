"""Registry of segmentation architectures.

Each entry builds a ``torch.nn.Module`` mapping a float tensor ``(N, bands, H, W)`` to logits
``(N, classes, H, W)`` and says which multiple ``H`` and ``W`` must be (so inference pads tiles).
New architectures register here; nothing else in geoseg branches on the architecture name.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geoseg.errors import ModelError


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture, what input sizes it accepts, how to ready it for inference.

    ``channels_last`` says whether the network runs faster in channels-last memory format on the
    CPU too (on CUDA every network does). Every architecture here does: on a 2-core AVX512-BF16
    CPU, a 512 px tile ran 1.27-1.74x faster in bfloat16 and 1.12-1.43x in float32 (U-Net-ResNet34
    0.218 -> 0.170 s and 0.420 -> 0.368 s; ``benchmarks/memory_format.py``).
    """

    build: Callable[[int, int, Mapping[str, Any]], nn.Module]
    size_multiple: Callable[[Mapping[str, Any]], int]
    summary: str
    channels_last: bool = True


def for_inference(network: nn.Module, in_place: bool = False) -> nn.Module:
    """An eval-mode copy of ``network`` with whatever speed-ups its architecture offers.

    Batch norms that directly follow a convolution are folded into it (see
    :func:`fold_batch_norms`); a network's own ``for_inference`` comes first. With
    ``in_place``, ``network`` itself is readied (no second copy of its weights in memory: 98 MB
    for a U-Net-ResNet34); use it only for a network nothing else will train or inspect.
    """
    import copy

    ready = (network if in_place else copy.deepcopy(network)).eval()
    prepare = getattr(ready, "for_inference", None)
    result: nn.Module = prepare() if callable(prepare) else ready
    fold_batch_norms(result)
    return result


def fold_batch_norms(network: nn.Module) -> int:
    """Fold every eval-mode batch norm that directly follows a convolution into it, in place.

    An inference batch norm is an affine map per channel, so it folds into the convolution's
    weights and bias: the same function without a pass over the activations (3,726 batch-norm
    calls took 0.9 s of a U-Net-ResNet34's 17.7 s on a 16 Mpx scene). Only where the order is
    known: a convolution followed by a batch norm in an ``nn.Sequential`` (smp's decoder blocks,
    ResNet downsampling, SegNet), and the ``convK``/``bnK`` pairs of torchvision's ResNet blocks
    and stem, which apply each ``bnK`` to ``convK``'s output only. Returns how many were folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def foldable(conv: object, norm: object) -> bool:
        return (
            type(conv) is nn.Conv2d
            and type(norm) is nn.BatchNorm2d
            and not norm.training
            and norm.running_mean is not None
            and conv.out_channels == norm.num_features
        )

    folded = 0
    for module in list(network.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in itertools.pairwise(names):
                conv, norm = module._modules[first], module._modules[second]
                if foldable(conv, norm):
                    assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
                    module._modules[first] = fuse_conv_bn_eval(conv, norm)
                    module._modules[second] = nn.Identity()
                    folded += 1
        elif _applies_bn_after_conv(module):
            for k in (1, 2, 3):
                block_conv = getattr(module, f"conv{k}", None)
                block_norm = getattr(module, f"bn{k}", None)
                if foldable(block_conv, block_norm):
                    assert isinstance(block_conv, nn.Conv2d)
                    assert isinstance(block_norm, nn.BatchNorm2d)
                    setattr(module, f"conv{k}", fuse_conv_bn_eval(block_conv, block_norm))
                    setattr(module, f"bn{k}", nn.Identity())
                    folded += 1
    return folded


def _applies_bn_after_conv(module: nn.Module) -> bool:
    """Whether ``module`` is torchvision's ResNet or one of its blocks (``bnK(convK(x))``)."""
    # a network without torchvision (Dynamic World's) must not pay for importing it
    resnet = sys.modules.get("torchvision.models.resnet")
    if resnet is None:
        return False
    return isinstance(module, resnet.BasicBlock | resnet.Bottleneck | resnet.ResNet)


def _build_unet(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    import segmentation_models_pytorch as smp

    depth = int(params.get("encoder_depth", 5))
    decoder_channels = params.get("decoder_channels", (256, 128, 64, 32, 16)[:depth])
    network: nn.Module = smp.Unet(
        encoder_name=str(params.get("encoder_name", "resnet18")),
        encoder_depth=depth,
        encoder_weights=None,  # never downloaded: weights come from the geoseg model file
        decoder_channels=tuple(decoder_channels),
        in_channels=in_channels,
        classes=classes,
    )
    return network


def _build_pspnet(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    import segmentation_models_pytorch as smp

    # smp's PSPNet: the pyramid pooling module on a ResNet truncated at depth 3 (output stride 8
    # without dilation), about 1/15 of the FLOPs of the classic dilated PSPNet.
    network: nn.Module = smp.PSPNet(
        encoder_name=str(params.get("encoder_name", "resnet18")),
        encoder_depth=int(params.get("encoder_depth", 3)),
        encoder_weights=None,
        psp_out_channels=int(params.get("psp_out_channels", 512)),
        in_channels=in_channels,
        classes=classes,
        upsampling=int(params.get("upsampling", 8)),
    )
    _drop_unused_stages(network, int(params.get("encoder_depth", 3)))
    return network


def _build_deeplabv3plus(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    import segmentation_models_pytorch as smp

    # atrous spatial pyramid pooling at output stride 16, a light decoder joining the stride-4
    # features: context without the full-resolution decoder of a U-Net
    network: nn.Module = smp.DeepLabV3Plus(
        encoder_name=str(params.get("encoder_name", "resnet18")),
        encoder_weights=None,
        encoder_output_stride=int(params.get("output_stride", 16)),
        decoder_channels=int(params.get("decoder_channels", 128)),
        in_channels=in_channels,
        classes=classes,
    )
    return network


def _build_fpn(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    import segmentation_models_pytorch as smp

    # a feature pyramid summed at stride 4 and upsampled: cheaper than a U-Net decoder
    network: nn.Module = smp.FPN(
        encoder_name=str(params.get("encoder_name", "resnet18")),
        encoder_weights=None,
        decoder_pyramid_channels=int(params.get("pyramid_channels", 128)),
        decoder_segmentation_channels=int(params.get("segmentation_channels", 64)),
        in_channels=in_channels,
        classes=classes,
    )
    return network


class SegNet(nn.Module):
    """SegNet: 3x3 convolutions and max-pooling, unpooled with the encoder's pooling indices.

    Boundaries come back where the encoder found them, without a learnt upsampling or skip
    connections of whole feature maps.

    Parameters
    ----------
    in_channels, classes : int
        Input bands and output classes.
    widths : sequence of int
        Channels of each encoder stage (each stage halves the resolution once).
    """

    def __init__(
        self, in_channels: int, classes: int, widths: tuple[int, ...] = (32, 64, 128, 256)
    ) -> None:
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        ins = (in_channels, *widths[:-1])
        self.encoders = nn.ModuleList(stage(a, b) for a, b in zip(ins, widths, strict=True))
        # decoder stage k maps widths[k] back to widths[k - 1] (the last one to widths[0])
        outs = (*widths[:-1][::-1], widths[0])
        self.decoders = nn.ModuleList(stage(a, b) for a, b in zip(widths[::-1], outs, strict=True))
        self.classifier = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of the same height and width as ``x`` (a multiple of 2**stages)."""
        indices: list[torch.Tensor] = []
        for encoder in self.encoders:
            x, where = nn.functional.max_pool2d(encoder(x), 2, return_indices=True)
            indices.append(where)
        for decoder, where in zip(self.decoders, indices[::-1], strict=True):
            x = decoder(nn.functional.max_unpool2d(x, where, (2, 2)))
        out: torch.Tensor = self.classifier(x)
        return out


def _build_segnet(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    widths = tuple(int(w) for w in params.get("widths", (32, 64, 128, 256)))
    return SegNet(in_channels, classes, widths)


def _drop_unused_stages(network: nn.Module, depth: int) -> None:
    """Remove the ResNet stages a truncated encoder never runs.

    smp keeps ``layer3``/``layer4`` of a depth-3 ResNet although its forward stops after
    ``layer2``; dropping them takes a ResNet-18 PSPNet from 11.4 M to about 2 M parameters, so
    the model file and the process's memory carry no dead weight.
    """
    encoder = getattr(network, "encoder", None)
    for stage in range(max(depth, 1), 5):  # layer k runs only when depth >= k + 1
        name = f"layer{stage}"
        if encoder is not None and isinstance(getattr(encoder, name, None), nn.Module):
            delattr(encoder, name)


class ConvNet(nn.Module):
    """A plain stack of 3x3 convolutions: a small, fast model with an exact receptive field.

    With ``layers`` convolutions the receptive field radius is ``layers`` pixels, which makes it
    the model of choice for proving that tiled prediction equals whole-image prediction.
    """

    def __init__(self, in_channels: int, classes: int, layers: int = 2, width: int = 16) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = in_channels
        for _ in range(max(layers - 1, 0)):
            blocks += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        blocks.append(nn.Conv2d(channels, classes, 3, padding=1))
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of the same height and width as ``x``."""
        out: torch.Tensor = self.body(x)
        return out


def _build_convnet(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    return ConvNet(in_channels, classes, int(params.get("layers", 2)), int(params.get("width", 16)))


def _build_dynamic_world(in_channels: int, classes: int, params: Mapping[str, Any]) -> nn.Module:
    from geoseg.models.dynamic_world import DynamicWorldNet

    return DynamicWorldNet(in_channels, classes)


def _encoder_multiple(default_depth: int) -> Callable[[Mapping[str, Any]], int]:
    def multiple(params: Mapping[str, Any]) -> int:
        return int(2 ** int(params.get("encoder_depth", default_depth)))

    return multiple


ARCHITECTURES: dict[str, Architecture] = {
    "unet": Architecture(_build_unet, _encoder_multiple(5), "U-Net (smp) with a ResNet encoder"),
    "pspnet": Architecture(
        _build_pspnet, _encoder_multiple(3), "PSPNet (smp, depth-3 ResNet, pyramid pooling)"
    ),
    "dynamic_world": Architecture(
        _build_dynamic_world,
        lambda _: 2,
        "Dynamic World v1 (depthwise-separable convolutions at half resolution, 231k parameters)",
    ),
    "deeplabv3plus": Architecture(
        _build_deeplabv3plus,
        lambda _: 32,
        "DeepLabV3+ (smp, ResNet encoder, atrous pyramid pooling, output stride 16)",
    ),
    "fpn": Architecture(_build_fpn, lambda _: 32, "FPN (smp, ResNet encoder, feature pyramid)"),
    "segnet": Architecture(
        _build_segnet,
        lambda params: int(2 ** len(params.get("widths", (32, 64, 128, 256)))),
        "SegNet (pooling-index unpooling, no skip connections; geoseg's own)",
    ),
    "convnet": Architecture(_build_convnet, lambda _: 1, "stack of 3x3 convolutions (tests)"),
}


def get_architecture(name: str) -> Architecture:
    """Look up an architecture by name.

    Raises
    ------
    ModelError
        If ``name`` is not registered; the message lists the available options.
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        options = ", ".join(sorted(ARCHITECTURES))
        raise ModelError(
            f"unknown architecture {name!r}; available options are: {options}"
        ) from None


def build_network(
    architecture: str, in_channels: int, classes: int, params: Mapping[str, Any]
) -> nn.Module:
    """Build an untrained network of a registered architecture."""
    try:
        return get_architecture(architecture).build(in_channels, classes, params)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot build {architecture!r} with {dict(params)}: {exc}") from exc
