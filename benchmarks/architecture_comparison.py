"""Architectures side by side: one short distillation run each, same data, same budget.

Each registered architecture (U-Net, PSPNet, DeepLabV3+, FPN with ResNet-18 encoders; SegNet;
Dynamic World's network) is trained from scratch by ``geoseg train`` on the six bands of the same
teacher-labelled scenes (s2-virginia, s2-aberystwyth, s2-brandenburg and three s2-tanzania dates,
with the shipped recipe's held-out blocks) for the same number of steps, then scored on the
held-out blocks: agreement with the teacher (Dynamic World v1), NOT accuracy. No pretrained
encoder weights are used (none are downloaded), so the runs compare architectures at an equal
and small budget; the shipped ``landcover-s2-dw6`` starts from Dynamic World's own weights and is
listed for reference. Also printed: parameters and the network alone on this CPU (Mpx/s over
512 px tiles in the precision ``geoseg predict`` uses here).

The teacher's targets are computed once and shared by every run (``OUT/prepared``)::

    .venv/bin/python benchmarks/architecture_comparison.py --out /tmp/archs --steps 150
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from geoseg.inference import native_bf16
from geoseg.models.architectures import build_network
from geoseg.training import train
from geoseg.training.config import train_config_from_dict

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "train_dw6.yaml"
SCENES = (
    "s2-virginia",
    "s2-aberystwyth",
    "s2-brandenburg",
    "s2-tanzania-20160710",
    "s2-tanzania-20180725",
    "s2-tanzania-20190615",
)
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "U-Net (ResNet-18)": ("unet", {"encoder_name": "resnet18"}),
    "PSPNet (ResNet-18, depth 3)": ("pspnet", {"encoder_name": "resnet18"}),
    "DeepLabV3+ (ResNet-18)": ("deeplabv3plus", {"encoder_name": "resnet18"}),
    "FPN (ResNet-18)": ("fpn", {"encoder_name": "resnet18"}),
    "SegNet": ("segnet", {}),
    "Dynamic World network": ("dynamic_world", {}),
}


def recipe(out: Path, architecture: str, params: dict[str, Any], steps: int) -> dict[str, Any]:
    """The shipped six-band recipe, cut to the comparison's scenes, network and budget."""
    base = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    scenes = []
    for scene in base["scenes"]:
        if scene["name"] in SCENES:
            for key in ("image",):
                if key in scene:
                    scene[key] = str((RECIPE.parent / scene[key]).resolve())
            if "band_files" in scene:
                scene["band_files"] = [
                    str((RECIPE.parent / p).resolve()) for p in scene["band_files"]
                ]
            scenes.append(scene)
    return {
        "output": str(out),
        "teacher": "landcover-s2-dw",
        "model": {
            "name": f"compare-{architecture}",
            "architecture": architecture,
            "arch_params": params,
            "classes": "dynamic_world",
            "bands": ["blue", "green", "red", "nir", "swir16", "swir22"],
            "gsd": 10.0,
            "tile_size": 256,
            "overlap": 32,
            "provenance": {"metrics_reference": "Dynamic World v1 (agreement, not accuracy)"},
        },
        "scenes": scenes,
        "loss": {"name": "ce", "weight": 0.5, "distillation": 1.0},
        "augment": {"flips": True, "rot90": True},
        "optim": {
            "steps": steps,
            "batch_size": 8,
            "patch_size": 128,
            "lr": 1e-3,
            "schedule": "cosine",
            "warmup_steps": 10,
            "seed": 0,
            "threads": torch.get_num_threads(),
            "device": "cpu",
            "checkpoint_every": max(steps, 1),
            "log_every": 10,
        },
    }


def network_speed(architecture: str, params: dict[str, Any], repeats: int = 3) -> float:
    """Megapixels per second of the network alone on 512 px tiles, batch 1, on this CPU."""
    network = build_network(architecture, 6, 9, params).eval()
    tile = torch.rand(1, 6, 512, 512)
    bf16 = native_bf16(torch.device("cpu"))
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        network(tile)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            network(tile)
    return repeats * 512 * 512 / (time.perf_counter() - start) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--only", nargs="*", default=None, help="architecture names to run")
    args = parser.parse_args()
    shared = args.out / "prepared"
    shared.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, (architecture, params) in CANDIDATES.items():
        if args.only and architecture not in args.only:
            continue
        out = args.out / architecture
        out.mkdir(parents=True, exist_ok=True)
        link = out / "prepared"
        if not link.exists():
            link.symlink_to(shared.resolve(), target_is_directory=True)
        started = time.perf_counter()
        result = train(train_config_from_dict(recipe(out, architecture, params, args.steps)))
        minutes = (time.perf_counter() - started) / 60
        network = build_network(architecture, 6, 9, params)
        tanzania = [v["miou"] for k, v in result.metrics.items() if k.startswith("s2-tanzania")]
        row = {
            "model": label,
            "parameters": sum(p.numel() for p in network.parameters()),
            "virginia": result.metrics["s2-virginia"]["miou"],
            "aberystwyth": result.metrics["s2-aberystwyth"]["miou"],
            "brandenburg": result.metrics["s2-brandenburg"]["miou"],
            "tanzania": sum(tanzania) / len(tanzania),
            "pooled": result.metrics["pooled"]["miou"],
            "train_mpx_s": result.megapixels_per_second,
            "network_mpx_s": network_speed(architecture, params),
            "minutes": minutes,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "comparison.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(
        "\n| model | parameters | virginia S | aberystwyth | brandenburg | tanzania (3) | pooled "
        "| train Mpx/s | network Mpx/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f} M | {r['virginia']:.3f} | "
            f"{r['aberystwyth']:.3f} | {r['brandenburg']:.3f} | {r['tanzania']:.3f} | "
            f"{r['pooled']:.3f} | {r['train_mpx_s']:.3f} | {r['network_mpx_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
