"""Training patches: random, augmented, spatially held out.

Two ways to draw patches share one contract (a batch of normalized inputs, labels with
:data:`~geoseg.io.labels.IGNORE`, optional teacher probabilities):

- :class:`PatchSampler` draws from scenes prepared in memory (:mod:`geoseg.training.prepare`).
  Each scene is normalized with its own whole-scene statistics, exactly as prediction does, and
  the draw of step ``k`` depends only on ``(seed, k)``, so a resumed run sees the same batches.
- :func:`geo_datasets` builds torchgeo ``RasterDataset`` s for an image and its label raster joined
  by intersection, with a ``RandomGeoSampler`` outside and a ``GridGeoSampler`` inside the held-out
  area, for files too large to hold in memory.

Patches never touch a scene's held-out window: it is validation only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geoseg.io.labels import IGNORE, write_raster
from geoseg.models.card import Normalization
from geoseg.normalization import normalize_reflectance
from geoseg.radiometry import PATH_REFLECTANCE
from geoseg.training.config import AugmentConfig
from geoseg.training.prepare import SceneData

_MAX_TRIES = 50


@dataclass(frozen=True)
class Batch:
    """One training batch.

    Parameters
    ----------
    image : torch.Tensor
        ``(N, bands, P, P)`` float32 model input (augmented reflectance, normalized).
    labels : torch.Tensor
        ``(N, P, P)`` int64 channel index or 255.
    soft : torch.Tensor or None
        ``(N, classes, P, P)`` float32 teacher probabilities, if every scene has them.
    """

    image: torch.Tensor
    labels: torch.Tensor
    soft: torch.Tensor | None


def _overlaps(rows: tuple[int, int], cols: tuple[int, int], holdout: tuple[slice, slice]) -> bool:
    hr, hc = holdout
    return bool(
        rows[0] < (hr.stop or 0)
        and rows[1] > (hr.start or 0)
        and cols[0] < (hc.stop or 0)
        and cols[1] > (hc.start or 0)
    )


class PatchSampler:
    """Draw augmented patches from prepared scenes, outside their held-out windows.

    Parameters
    ----------
    scenes : sequence of SceneData
        Prepared scenes; those with ``train`` false are skipped.
    patch_size : int
        Side of the patches in pixels.
    augment : AugmentConfig
        Augmentation settings.
    normalization : Normalization
        The model's function of reflectance, applied after augmentation.
    band_names : sequence of str
        The model's bands (haze falls with wavelength).
    focus_classes : sequence of int
        Channel indexes of classes that ``augment.focus_probability`` centres patches on.
    seed : int
        Seed; the batch of step ``k`` depends only on ``(seed, k)``.
    """

    def __init__(
        self,
        scenes: Sequence[SceneData],
        patch_size: int,
        augment: AugmentConfig,
        normalization: Normalization,
        band_names: Sequence[str],
        focus_classes: Sequence[int] = (),
        seed: int = 0,
    ) -> None:
        self.scenes = [s for s in scenes if s.train]
        if not self.scenes:
            raise ValueError("no scene to train on")
        self.patch_size = patch_size
        self.augment = augment
        self.normalization = normalization
        self.haze_weights = torch.tensor(
            [_HAZE_WEIGHTS.get(b, 0.3) for b in band_names], dtype=torch.float32
        ).view(-1, 1, 1)
        self.seed = seed
        areas = np.array([s.train_mask().sum() * s.weight for s in self.scenes], dtype=np.float64)
        if areas.sum() <= 0:
            raise ValueError("the scenes have no trainable pixel outside their holdout")
        self.probabilities = areas / areas.sum()
        self.with_soft = all(s.soft is not None for s in self.scenes)
        # pixel positions of the focus classes inside each scene's trainable area
        self._focus: list[np.ndarray] = []
        rng = np.random.default_rng(seed)
        for scene in self.scenes:
            mask = scene.train_mask() & np.isin(scene.labels, list(focus_classes))
            where = np.flatnonzero(mask)
            if where.size > 200_000:
                where = rng.choice(where, 200_000, replace=False)
            self._focus.append(where)

    def batch(self, step: int, batch_size: int) -> Batch:
        """The batch of optimiser step ``step``."""
        rng = np.random.default_rng([self.seed, step])
        items = [self._sample(rng) for _ in range(batch_size)]
        image = torch.stack([i[0] for i in items])
        labels = torch.stack([i[1] for i in items])
        soft = torch.stack([i[2] for i in items]) if self.with_soft else None
        return Batch(image, labels, soft)

    def _source_size(self, rng: np.random.Generator) -> int:
        aug = self.augment
        if aug.zoom_probability > 0 and rng.random() < aug.zoom_probability:
            low, high = np.log(aug.zoom_range[0]), np.log(aug.zoom_range[1])
            zoom = float(np.exp(rng.uniform(low, high)))
            return max(8, round(self.patch_size / zoom))
        return self.patch_size

    def _position(self, rng: np.random.Generator, index: int, size: int) -> tuple[int, int] | None:
        scene = self.scenes[index]
        height, width = scene.shape
        focus = self._focus[index]
        for _ in range(_MAX_TRIES):
            if focus.size and rng.random() < self.augment.focus_probability:
                centre = int(focus[rng.integers(focus.size)])
                row = centre // width - size // 2 + int(rng.integers(-size // 4, size // 4 + 1))
                col = centre % width - size // 2 + int(rng.integers(-size // 4, size // 4 + 1))
            else:
                row = int(rng.integers(0, max(height - size, 0) + 1))
                col = int(rng.integers(0, max(width - size, 0) + 1))
            row = min(max(row, 0), max(height - size, 0))
            col = min(max(col, 0), max(width - size, 0))
            rows, cols = (row, row + size), (col, col + size)
            if scene.holdout is None or not _overlaps(rows, cols, scene.holdout):
                return row, col
        return None

    def _sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        while True:
            index = int(rng.choice(len(self.scenes), p=self.probabilities))
            size = self._source_size(rng)
            position = self._position(rng, index, size)
            if position is not None:
                break
        scene = self.scenes[index]
        row, col = position
        image = _crop(scene.image, row, col, size, 0.0)
        labels = _crop(scene.labels, row, col, size, IGNORE)
        soft = (
            _crop(scene.soft, row, col, size, 0.0)
            if self.with_soft and scene.soft is not None
            else None
        )
        x = torch.from_numpy(np.ascontiguousarray(image))
        y = torch.from_numpy(np.ascontiguousarray(labels))
        s = torch.from_numpy(np.ascontiguousarray(soft)) if soft is not None else None
        return self._finish(x, y, s, rng)

    def _finish(
        self, x: torch.Tensor, y: torch.Tensor, s: torch.Tensor | None, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Resize a drawn patch to ``patch_size`` and augment it."""
        if x.shape[-1] != self.patch_size or x.shape[-2] != self.patch_size:
            out = (self.patch_size, self.patch_size)
            x = F.interpolate(x[None], size=out, mode="bilinear", align_corners=False)[0]
            y = F.interpolate(y[None, None].float(), size=out, mode="nearest")[0, 0].long()
            if s is not None:
                s = F.interpolate(s[None], size=out, mode="bilinear", align_corners=False)[0]
        x = self._radiometric(x, rng)
        x, y, s = _geometric(x, y, s, rng, self.augment)
        if s is None:
            s = torch.zeros(0)
        return x, y, s

    def _radiometric(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment reflectance in physical units, then apply the model's normalization."""
        aug = self.augment
        valid = (x != 0).any(dim=0, keepdim=True)
        if aug.blur_probability > 0 and rng.random() < aug.blur_probability:
            factor = float(rng.uniform(*aug.blur_range))
            small = max(4, round(x.shape[-1] / factor))
            low = F.interpolate(x[None], size=(small, small), mode="area")
            x = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
        if aug.radiometric_probability < 1 and rng.random() >= aug.radiometric_probability:
            return normalize_reflectance(x[None], self.normalization)[0] * valid
        bands = x.shape[0]
        low, high = np.log(aug.gain_range[0]), np.log(aug.gain_range[1])
        gain = float(np.exp(rng.uniform(low, high))) if high > low else aug.gain_range[0]
        per_band = 1.0 + rng.uniform(-1, 1, bands) * aug.band_gain
        offset = rng.uniform(-1, 1, bands) * aug.band_offset
        x = x * torch.from_numpy((gain * per_band).astype(np.float32)).view(-1, 1, 1)
        x = x + torch.from_numpy(offset.astype(np.float32)).view(-1, 1, 1)
        if aug.haze_probability > 0 and rng.random() < aug.haze_probability:
            # add path reflectance, or take it away (surface vs top-of-atmosphere reflectance)
            haze = float(rng.uniform(*aug.haze_range))
            x = x + haze * self.haze_weights
        x = normalize_reflectance(x[None], self.normalization)[0]
        return x * valid


# Relative path reflectance per band (blue = 1), the shape of radiometry's typical clear sky.
_HAZE_WEIGHTS = {band: value / PATH_REFLECTANCE["blue"] for band, value in PATH_REFLECTANCE.items()}


class GeoPatchSampler(PatchSampler):
    """Draw augmented patches through torchgeo, outside each scene's held-out window.

    Each training scene is written once to ``work_dir`` as two GeoTIFFs on its own grid: the
    reflectance bands followed by any teacher probabilities, and the label channel
    indexes. They are read as torchgeo ``RasterDataset`` s joined by intersection, and every
    patch is a ``RandomGeoSampler`` draw inside the scene's training area (the largest band of
    the scene beside its holdout). As with :class:`PatchSampler`, scenes are chosen in
    proportion to their trainable area and the batch of step ``k`` depends only on
    ``(seed, k)``; zoom, radiometric and geometric augmentation are the same. Focus sampling
    does not apply (a geo sampler draws uniformly).

    Parameters
    ----------
    scenes : sequence of SceneData
        Prepared scenes; those with ``train`` false are skipped.
    work_dir : Path
        Folder for the GeoTIFFs the datasets read.
    patch_size, augment, normalization, band_names, seed
        As for :class:`PatchSampler`.
    """

    def __init__(
        self,
        scenes: Sequence[SceneData],
        work_dir: Path,
        patch_size: int,
        augment: AugmentConfig,
        normalization: Normalization,
        band_names: Sequence[str],
        seed: int = 0,
    ) -> None:
        super().__init__(scenes, patch_size, augment, normalization, band_names, (), seed)
        self._datasets: list[dict[str, Any]] = []
        for scene in self.scenes:
            image_path, label_path = _write_geo_scene(scene, work_dir, self.with_soft)
            holdout = _holdout_bounds(scene) if scene.holdout is not None else None
            parts = geo_datasets(str(image_path), str(label_path), holdout, patch_size, 1, seed)
            parts["bands"] = int(scene.image.shape[0])
            self._datasets.append(parts)

    def _sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from torchgeo.samplers import RandomGeoSampler

        index = int(rng.choice(len(self.scenes), p=self.probabilities))
        size = self._source_size(rng)
        parts = self._datasets[index]
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        sampler = RandomGeoSampler(
            parts["dataset"], size, length=1, roi=parts["train_roi"], generator=generator
        )
        queries = list(sampler)
        if not queries:
            raise ValueError(f"scene {self.scenes[index].name!r}: no {size} px patch fits")
        sample = parts["dataset"][queries[0]]
        stacked = sample["image"].float()
        bands = parts["bands"]
        x = stacked[:bands]
        s = stacked[bands:] if self.with_soft else None
        y = sample["mask"].long().reshape(stacked.shape[-2:])
        return self._finish(x, y, s, rng)


def _write_geo_scene(scene: SceneData, work_dir: Path, with_soft: bool) -> tuple[Path, Path]:
    """Write a prepared scene as an image GeoTIFF (bands, then soft labels) and a label one."""
    work_dir.mkdir(parents=True, exist_ok=True)
    image_path = work_dir / f"{scene.name}-reflectance.tif"
    label_path = work_dir / f"{scene.name}-labels.tif"
    layers = [scene.image] + ([scene.soft] if with_soft and scene.soft is not None else [])
    write_raster(image_path, np.concatenate(layers).astype(np.float32), scene.grid)
    write_raster(label_path, scene.labels.astype(np.uint8)[None], scene.grid)
    return image_path, label_path


def _holdout_bounds(scene: SceneData) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of a scene's held-out window in its CRS."""
    assert scene.holdout is not None
    rows, cols = scene.holdout
    height, width = scene.shape
    transform = scene.grid.transform
    left, top = transform * (cols.start or 0, rows.start or 0)
    right, bottom = transform * (cols.stop or width, rows.stop or height)
    return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))


def _crop(array: np.ndarray, row: int, col: int, size: int, fill: float) -> np.ndarray:
    """``array[..., row:row+size, col:col+size]``, padded with ``fill`` past the edges."""
    height, width = array.shape[-2:]
    out = np.full((*array.shape[:-2], size, size), fill, dtype=array.dtype)
    h = min(size, height - row)
    w = min(size, width - col)
    out[..., :h, :w] = array[..., row : row + h, col : col + w]
    return out


def _geometric(
    x: torch.Tensor,
    y: torch.Tensor,
    s: torch.Tensor | None,
    rng: np.random.Generator,
    aug: AugmentConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    dims: list[int] = []
    if aug.flips and rng.random() < 0.5:
        dims.append(-1)
    if aug.flips and rng.random() < 0.5:
        dims.append(-2)
    turns = int(rng.integers(4)) if aug.rot90 else 0

    def apply(t: torch.Tensor) -> torch.Tensor:
        if dims:
            t = torch.flip(t, dims)
        if turns:
            t = torch.rot90(t, turns, dims=(-2, -1))
        return t.contiguous()

    return apply(x), apply(y), (apply(s) if s is not None else None)


def geo_datasets(
    image_path: str,
    label_path: str,
    holdout_bounds: tuple[float, float, float, float] | None = None,
    patch_size: int = 256,
    length: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Torchgeo datasets and samplers for one image and its (aligned) label raster.

    The image and labels are ``RasterDataset`` s joined by intersection (``&``). Training
    patches come from a ``RandomGeoSampler`` restricted to the part of the scene outside
    ``holdout_bounds`` (the largest rectangle beside it); validation tiles from a
    ``GridGeoSampler`` over ``holdout_bounds``.

    Parameters
    ----------
    image_path, label_path : str
        GeoTIFFs on the same CRS (labels are typically written by
        :func:`geoseg.io.labels.write_raster` after rasterizing polygons onto the image grid).
    holdout_bounds : tuple of float, optional
        ``(left, bottom, right, top)`` in the image CRS held out for validation.
    patch_size : int
        Patch side in pixels.
    length : int
        Patches per training epoch.
    seed : int
        Seed of the random sampler.

    Returns
    -------
    dict
        ``dataset`` (the intersection), ``train_sampler``, ``val_sampler`` (``None`` without a
        holdout) and ``train_roi`` (the training area, a shapely box).
    """
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

    image = _single_file_dataset(RasterDataset, image_path, is_image=True)
    labels = _single_file_dataset(RasterDataset, label_path, is_image=False)
    dataset = image & labels
    xs, ys = dataset.bounds[0], dataset.bounds[1]
    left, bottom, right, top = xs.start, ys.start, xs.stop, ys.stop
    train_roi = _roi(left, bottom, right, top)
    val_sampler = None
    if holdout_bounds is not None:
        h_left, h_bottom, h_right, h_top = holdout_bounds
        # keep the largest full-width or full-height band outside the holdout for training
        candidates = [
            (left, bottom, right, h_bottom),
            (left, h_top, right, top),
            (left, bottom, h_left, top),
            (h_right, bottom, right, top),
        ]
        best = max(candidates, key=lambda b: max(b[2] - b[0], 0) * max(b[3] - b[1], 0))
        train_roi = _roi(*best)
        val_sampler = GridGeoSampler(dataset, patch_size, patch_size, roi=_roi(*holdout_bounds))
    generator = torch.Generator().manual_seed(seed)
    train_sampler = RandomGeoSampler(
        dataset, patch_size, length=length, roi=train_roi, generator=generator
    )
    return {
        "dataset": dataset,
        "train_sampler": train_sampler,
        "val_sampler": val_sampler,
        "train_roi": train_roi,
    }


def _single_file_dataset(base: Any, path: str, is_image: bool) -> Any:
    file = Path(path)
    cls = type(
        "ImageDataset" if is_image else "LabelDataset",
        (base,),
        {"filename_glob": file.name, "is_image": is_image, "separate_files": False},
    )
    return cls(paths=[str(file)])


def _roi(left: float, bottom: float, right: float, top: float) -> Any:
    from shapely.geometry import box

    return box(left, bottom, right, top)
