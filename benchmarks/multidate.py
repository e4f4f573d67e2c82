"""Several dates, one map: single-date maps beside the fused one (s2-tanzania-series by default).

Predicts every date alone and all dates together (``geoseg predict A B C ...``), then prints, over
the pixels valid on at least two dates, how often a pixel's class changes between the dates it
is valid on, and how the fused map relates to the single dates (the share where it equals the
most frequent single-date class). Writes a figure of a few dates beside the fused map.

    .venv/bin/python benchmarks/multidate.py --out /tmp/bench/multidate.png
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from geoseg.models.loading import load_model
from geoseg.pipeline import PredictOptions, predict
from geoseg.radiometry import RadiometryRequest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GEOSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="*", type=Path)
    parser.add_argument("--product", default="surface-reflectance-x1000")
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench/multidate.png"))
    args = parser.parse_args()
    scenes = args.scenes or sorted((SHARED / "s2-tanzania-series").glob("*.tif"))
    options = PredictOptions(radiometry=RadiometryRequest(product=args.product))
    with tempfile.TemporaryDirectory() as tmp:
        singles = []
        for i, scene in enumerate(scenes):
            out = Path(tmp) / f"d{i}.tif"
            result = predict(scene, None, model=args.model, raster=out, options=options)
            with rasterio.open(out) as src:
                singles.append(src.read(1))
        fused_path = Path(tmp) / "fused.tif"
        fused_result = predict(scenes, None, model=args.model, raster=fused_path, options=options)
        with rasterio.open(fused_path) as src:
            fused = src.read(1)
    stack = np.stack(singles)
    valid = stack != 255
    dates_valid = valid.sum(axis=0)
    several = dates_valid >= 2
    changes = []
    for a, b in itertools.pairwise(stack):
        both = (a != 255) & (b != 255)
        if both.any():
            changes.append(float((a != b)[both].mean()))
    counts = np.stack([(stack == c).sum(axis=0) for c in range(255)])
    mode = counts.argmax(axis=0)
    unstable = several & (counts.max(axis=0) < dates_valid)
    print(f"{len(scenes)} dates, model {result.model}; {several.sum()} pixels valid on 2+ dates")
    print(
        f"class changes between consecutive valid dates: {100 * np.mean(changes):.1f}% of pixels "
        f"on average ({100 * min(changes):.1f}-{100 * max(changes):.1f}%)"
    )
    unstable_share = 100 * unstable[several].mean()
    print(f"pixels whose single-date class is not the same on every date: {unstable_share:.1f}%")
    agree_all = 100 * (fused == mode)[several].mean()
    agree_unstable = 100 * (fused == mode)[unstable].mean()
    print(
        f"fused class = the most frequent single-date class at {agree_all:.1f}% of them "
        f"({agree_unstable:.1f}% of the unstable ones)"
    )
    total = sum(fused_result.class_pixels.values())
    print(
        "fused shares: "
        + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in fused_result.class_pixels.items())
    )
    _figure(stack, fused, [s.name for s in scenes], result.model, args.out)


def _figure(stack: np.ndarray, fused: np.ndarray, names: list[str], model: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    classes = load_model(model).card.legend().classes
    cmap = ListedColormap([c.color for c in classes])
    picks = np.linspace(0, len(stack) - 1, min(5, len(stack))).astype(int)
    fig, axes = plt.subplots(1, len(picks) + 1, figsize=(3 * (len(picks) + 1), 3.2))
    for ax, i in zip(axes, picks, strict=False):
        ax.imshow(
            np.ma.masked_equal(stack[i], 255),
            cmap=cmap,
            vmin=0,
            vmax=len(classes) - 1,
            interpolation="nearest",
        )
        ax.set_title(names[i].split("_")[2], fontsize=9)
    axes[-1].imshow(
        np.ma.masked_equal(fused, 255),
        cmap=cmap,
        vmin=0,
        vmax=len(classes) - 1,
        interpolation="nearest",
    )
    axes[-1].set_title(f"fused ({len(stack)} dates)", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
