"""A model file with random weights, for speed and memory benchmarks only (never for maps).

It carries the default model's card (bands, normalization, classes) with another architecture, so
the pipeline treats it exactly like an embedded model.

Usage::

    .venv/bin/python benchmarks/random_model.py --encoder resnet34 --out /tmp/bench/unet-r34.pt
    # a model that costs almost nothing: what the rest of the pipeline can do
    .venv/bin/python benchmarks/random_model.py --architecture convnet --base landcover-s2-dw \
        --out /tmp/bench/light-nine.pt
    # the five classes as the network's own output (no nine-class view), as the peers of
    # ../shared/tools/peerbench run smp.Unet('resnet34', classes=5)
    .venv/bin/python benchmarks/random_model.py --five-classes --out /tmp/pb/data/unet-r34.pt
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from geoseg.models.architectures import build_network
from geoseg.models.card import FULL_LEGEND, LANDCOVER_CLASSES
from geoseg.models.loading import load_model, save_model_file


def main() -> None:
    """Write the model file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="unet")
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument(
        "--base", default="landcover-s2-dw6", help="the embedded model whose card it carries"
    )
    parser.add_argument("--width", type=int, default=8, help="convnet: channels")
    parser.add_argument("--layers", type=int, default=1, help="convnet: 3x3 convolutions")
    parser.add_argument(
        "--five-classes",
        action="store_true",
        help="the network outputs geoseg's five classes itself (no view over nine)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params: dict[str, object] = {"encoder_name": args.encoder, "encoder_depth": 5}
    if args.architecture == "unet":
        params["decoder_channels"] = [256, 128, 64, 32, 16]  # smp's default U-Net decoder
    if args.architecture == "convnet":
        params = {"layers": args.layers, "width": args.width}
    base = load_model(args.base).card
    if args.five_classes:
        base = dataclasses.replace(
            base, classes=LANDCOVER_CLASSES, legends=(), default_legend=FULL_LEGEND
        )
    name = args.encoder if args.architecture != "convnet" else f"{args.layers}x{args.width}"
    card = base.with_updates(
        name=f"bench-{args.architecture}-{name}",
        architecture=args.architecture,
        arch_params=params,
        tile_size=512,
        overlap=64,
        description="benchmark only: random weights",
        training={},
        metrics={},
    )
    torch.manual_seed(0)
    network = build_network(card.architecture, len(card.bands), card.num_classes, params)
    save_model_file(args.out, card, network.state_dict())
    millions = sum(p.numel() for p in network.parameters()) / 1e6
    print(f"wrote {args.out}: {millions:.1f} M parameters")


if __name__ == "__main__":
    main()
