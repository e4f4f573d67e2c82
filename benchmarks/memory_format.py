"""Each architecture's forward pass in PyTorch's default (NCHW) and channels-last memory format.

Why ``Architecture.channels_last`` is set as it is: one 512 px, 6-band tile at batch 1 through
each architecture with its default parameters (random weights), the two formats alternated within
one process, medians of ``--repeat`` passes, in bfloat16 autocast and float32. Also checks that the
two formats give the same classes in float32.

Usage::

    .venv/bin/python benchmarks/memory_format.py
    .venv/bin/python benchmarks/memory_format.py unet pspnet --repeat 9
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import geoseg  # noqa: F401  first, so OpenMP's spin count (geoseg/__init__.py) is set before torch

if TYPE_CHECKING:
    import torch

EXAMPLES: dict[str, dict[str, Any]] = {
    "unet": {"encoder_name": "resnet34"},
    "pspnet": {},
    "deeplabv3plus": {},
    "fpn": {},
    "segnet": {},
    "dynamic_world": {},
    "convnet": {},
}


def time_passes(
    networks: dict[str, tuple[torch.nn.Module, torch.Tensor]],
    bf16: bool,
    repeat: int,
) -> dict[str, float]:
    """Median seconds of one forward pass of each network, the networks alternated."""
    import torch

    times: dict[str, list[float]] = {name: [] for name in networks}
    autocast: Callable[[], contextlib.AbstractContextManager[object]] = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    )
    with torch.inference_mode(), autocast():
        for network, x in networks.values():
            network(x)  # warm-up: oneDNN builds its kernels at the first call
        for _ in range(repeat):
            for name, (network, x) in networks.items():
                t0 = time.perf_counter()
                network(x)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    """Print the table."""
    import torch

    from geoseg.models.architectures import ARCHITECTURES, build_network, for_inference

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("architectures", nargs="*", default=list(EXAMPLES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, {args.size} px tile, batch 1; seconds per pass")
    print("architecture    precision  NCHW    channels-last  speed-up  classes agree (fp32)")
    for name in args.architectures:
        bands = 9 if name == "dynamic_world" else 6
        network = for_inference(build_network(name, bands, 9, EXAMPLES.get(name, {})))
        last = copy.deepcopy(network).to(memory_format=torch.channels_last)
        x = torch.rand(1, bands, args.size, args.size) * 0.3
        x_last = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            agree = (network(x).argmax(1) == last(x_last).argmax(1)).float().mean().item()
        layout = "channels-last" if ARCHITECTURES[name].channels_last else "NCHW"
        for bf16 in (True, False):
            seconds = time_passes({"nchw": (network, x), "last": (last, x_last)}, bf16, args.repeat)
            print(
                f"{name:15s} {'bf16' if bf16 else 'fp32':9s}  {seconds['nchw']:.3f}   "
                f"{seconds['last']:.3f}          {seconds['nchw'] / seconds['last']:.2f}x     "
                f"{agree:.4%}  (geoseg: {layout})"
            )


if __name__ == "__main__":
    main()
