"""Quicklooks of a model on the unlabelled cross-sensor scenes: true colour beside the class map.

Usage: python scripts/quicklooks.py MODEL OUT_DIR [SCENE ...]

With no SCENE, runs on the Landsat scenes of ../shared/data (landsat-xlandsat, landsat7-olinda,
landsat8-parana). Writes one PNG per scene and ``classes.json`` with the class shares, for looking
at, not for accuracy claims (these scenes have no labels).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap

from geoseg.models.loading import load_model
from geoseg.pipeline import PredictOptions, predict

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_scenes() -> list[Path]:
    """The Landsat scenes of the shared data."""
    return [
        *sorted((SHARED / "landsat-xlandsat").glob("*.tif")),
        SHARED / "landsat7-olinda" / "L7_ETMs.tif",
        SHARED / "landsat8-parana" / "LC08_224078_20200518_rgb.tif",
    ]


def true_colour(path: Path, rgb: tuple[int, int, int]) -> np.ndarray:
    """A 2-98 % stretched ``(H, W, 3)`` image of bands ``rgb`` (1-based)."""
    with rasterio.open(path) as src:
        data = src.read(list(rgb)).astype(np.float32)
    low, high = np.percentile(data, [2, 98], axis=(1, 2), keepdims=True)
    return np.clip((data - low) / np.maximum(high - low, 1e-6), 0, 1).transpose(1, 2, 0)


def main(model_name: str, out_dir: Path, scenes: list[Path]) -> None:
    """Predict each scene with the model and write its quicklook."""
    model = load_model(model_name)
    card = model.card
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = ListedColormap([c.color for c in card.classes])
    shares: dict[str, dict[str, float]] = {}
    for scene in scenes:
        with rasterio.open(scene) as src:
            count = src.count
        if count < len(card.bands):
            continue
        # Landsat stacks hold blue, green, red, nir, swir16, swir22 in that order; the Parana
        # stack holds blue, green, red
        order = {"blue": 1, "green": 2, "red": 3, "nir": 4, "swir16": 5, "swir22": 6}
        bands = tuple(str(order[b]) for b in card.bands)
        raster = out_dir / f"{scene.stem}.classes.tif"
        predict(
            scene,
            None,
            model=model,
            raster=raster,
            options=PredictOptions(bands=bands, device="cpu"),
            overwrite=True,
        )
        with rasterio.open(raster) as src:
            classes = src.read(1)
        valid = classes != 255
        shares[scene.name] = {
            c.name: round(float((classes[valid] == c.id).mean()), 3) for c in card.classes
        }
        fig, axes = plt.subplots(1, 2, figsize=(12, 6))
        axes[0].imshow(true_colour(scene, (3, 2, 1)))
        axes[0].set_title(scene.stem[:48], fontsize=8)
        shown = np.ma.masked_equal(classes, 255)
        axes[1].imshow(
            shown, cmap=colours, vmin=-0.5, vmax=len(card.classes) - 0.5, interpolation="nearest"
        )
        axes[1].set_title(
            ", ".join(f"{k} {v:.0%}" for k, v in shares[scene.name].items()), fontsize=8
        )
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(out_dir / f"{scene.stem}.png", dpi=60)
        plt.close(fig)
        raster.unlink()
        logging.info("%s: %s", scene.name, shares[scene.name])
    (out_dir / "classes.json").write_text(json.dumps(shares, indent=2) + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = [Path(p) for p in sys.argv[3:]] or default_scenes()
    main(sys.argv[1], Path(sys.argv[2]), paths)
