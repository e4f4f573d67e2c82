"""Quicklooks of a model on the unlabelled cross-sensor scenes: true color beside the class map.

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

from geoseg.errors import GeosegError
from geoseg.models.loading import load_model
from geoseg.pipeline import PredictOptions, predict
from geoseg.radiometry import RadiometryRequest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_scenes() -> list[Path]:
    """The Landsat scenes of the shared data."""
    return [
        *sorted((SHARED / "landsat-xlandsat").glob("*.tif")),
        SHARED / "landsat5-amazon-rstoolbox" / "LT05_1988-08-14_B1-B7.tif",
        SHARED / "landsat7-olinda" / "L7_ETMs.tif",
        SHARED / "landsat8-parana" / "LC08_224078_20200518_rgb.tif",
    ]


def true_color(path: Path, rgb: tuple[int, int, int]) -> np.ndarray:
    """A 2-98 % stretched ``(H, W, 3)`` image of bands ``rgb`` (1-based)."""
    with rasterio.open(path) as src:
        data = src.read(list(rgb)).astype(np.float32)
    low, high = np.percentile(data, [2, 98], axis=(1, 2), keepdims=True)
    image: np.ndarray = np.clip((data - low) / np.maximum(high - low, 1e-6), 0, 1)
    return image.transpose(1, 2, 0)


# What the files do not say about themselves, as a user would pass it (band order, product)
KNOWN: dict[str, dict[str, object]] = {
    "L7_ETMs.tif": {"bands": ("blue", "green", "red", "nir", "swir16", "swir22")},
    "LC08_224078_20200518_rgb.tif": {
        "bands": ("blue", "green", "red"),
        "radiometry": RadiometryRequest(product="landsat-c2-l1"),
    },
}


def main(model_name: str, out_dir: Path, scenes: list[Path]) -> None:
    """Predict each scene with the model and write its quicklook."""
    model = load_model(model_name)
    card = model.card
    classes_shown = card.legend().classes
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = ListedColormap([c.color for c in classes_shown])
    shares: dict[str, dict[str, float]] = {}
    for scene in scenes:
        known = KNOWN.get(scene.name, {})
        order = known.get("bands")
        options = PredictOptions(device="cpu")
        if isinstance(order, tuple):
            if not set(card.bands) <= set(order):
                continue
            bands = tuple(str(order.index(b) + 1) for b in card.bands)
            options = PredictOptions(bands=bands, device="cpu")
        radiometry = known.get("radiometry")
        if isinstance(radiometry, RadiometryRequest):
            options = PredictOptions(bands=options.bands, device="cpu", radiometry=radiometry)
        raster = out_dir / f"{scene.stem}.classes.tif"
        try:
            predict(scene, None, model=model, raster=raster, options=options, overwrite=True)
        except GeosegError as exc:
            logging.info("%s: skipped (%s)", scene.name, exc)
            continue
        with rasterio.open(raster) as src:
            classes = src.read(1)
        valid = classes != 255
        shares[scene.name] = {
            c.name: round(float((classes[valid] == c.id).mean()), 3) for c in classes_shown
        }
        fig, axes = plt.subplots(1, 2, figsize=(12, 6))
        rgb = (3, 2, 1) if not isinstance(order, tuple) or "red" in order[:3] else (1, 2, 3)
        axes[0].imshow(true_color(scene, rgb))
        axes[0].set_title(scene.stem[:48], fontsize=8)
        shown = np.ma.masked_equal(classes, 255)
        axes[1].imshow(
            shown, cmap=colors, vmin=-0.5, vmax=len(classes_shown) - 0.5, interpolation="nearest"
        )
        axes[1].set_title(
            ", ".join(f"{k} {v:.0%}" for k, v in shares[scene.name].items()), fontsize=8
        )
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(out_dir / f"{scene.stem}.png", dpi=60)
        plt.close(fig)
        # the class raster and the sidecars predict writes beside it (style, statistics)
        for written in (raster, raster.with_suffix(".qml"), Path(f"{raster}.aux.xml")):
            written.unlink(missing_ok=True)
        logging.info("%s: %s", scene.name, shares[scene.name])
    (out_dir / "classes.json").write_text(json.dumps(shares, indent=2) + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = [Path(p) for p in sys.argv[3:]] or default_scenes()
    main(sys.argv[1], Path(sys.argv[2]), paths)
