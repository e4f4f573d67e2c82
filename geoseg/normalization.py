"""Turning raw scene values into model input, identically in training and prediction.

Statistics are fitted once per scene (from a sample of its valid pixels) and then applied to every
tile, so a tile's input never depends on which tile it is: the basis of seam-free stitching.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoseg.errors import EmptySceneError
from geoseg.models.card import Normalization


@dataclass(frozen=True)
class BandStats:
    """Per-band affine map ``(x - offset) / scale`` fitted for one scene and one model.

    Parameters
    ----------
    offset, scale : tuple of float
        One value per model band.
    clip : tuple of float
        Range the normalised values are clipped to.
    """

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    clip: tuple[float, float]

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Normalise a ``(bands, H, W)`` or ``(N, bands, H, W)`` array to float32."""
        shape = (-1, 1, 1)
        offset = np.asarray(self.offset, dtype=np.float32).reshape(shape)
        scale = np.asarray(self.scale, dtype=np.float32).reshape(shape)
        out = (raw.astype(np.float32) - offset) / scale
        return np.clip(out, self.clip[0], self.clip[1], out=out)

    def apply_torch(self, raw: torch.Tensor) -> torch.Tensor:
        """Normalise an integer or float tensor ``(N, bands, H, W)`` on its own device."""
        offset = torch.tensor(self.offset, dtype=torch.float32, device=raw.device).view(1, -1, 1, 1)
        scale = torch.tensor(self.scale, dtype=torch.float32, device=raw.device).view(1, -1, 1, 1)
        out = (raw.to(torch.float32) - offset) / scale
        return out.clamp_(self.clip[0], self.clip[1])


def fit_band_stats(sample: np.ndarray, valid: np.ndarray, norm: Normalization) -> BandStats:
    """Fit the normalisation of one scene.

    Parameters
    ----------
    sample : np.ndarray
        ``(bands, H, W)`` raw values, usually a decimated read of the whole scene.
    valid : np.ndarray
        ``(H, W)`` boolean mask of valid pixels.
    norm : Normalization
        The model card's normalisation.

    Raises
    ------
    EmptySceneError
        If the sample holds no valid pixel.
    """
    if norm.method == "fixed":
        mean = np.asarray(norm.mean, dtype=np.float64)
        std = np.asarray(norm.std, dtype=np.float64)
        # (x * s - m) / d == (x - m / s) / (d / s)
        return BandStats(
            tuple((mean / norm.scale).tolist()), tuple((std / norm.scale).tolist()), norm.clip
        )
    if not valid.any():
        raise EmptySceneError("the scene holds no valid pixel (it is all nodata)")
    # one band at a time, in its own dtype: a float64 copy of the whole sample would be the run's
    # largest allocation (6 bands x 4 Mpx x 8 bytes, twice over inside np.percentile)
    bounds = np.array(
        [np.percentile(band[valid], (norm.low_percentile, norm.high_percentile)) for band in sample]
    )
    low, high = bounds[:, 0], bounds[:, 1]
    # a constant band would divide by zero; give it unit scale so it maps to 0
    span = np.where(high - low > 1e-6, high - low, 1.0)
    return BandStats(tuple(low.tolist()), tuple(span.tolist()), norm.clip)
