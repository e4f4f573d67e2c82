"""Turning raw scene values into model input, identically in training and prediction.

Two fixed steps, per band and per pixel: the scene's radiometry turns stored values into
reflectance (:mod:`geoseg.radiometry`, decided from metadata), then the model's normalization
turns reflectance into input (:class:`geoseg.models.card.Normalization`). Nothing depends on the
rest of the file, so a tile, a crop or a tile archive gives every pixel the same input as the
whole scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoseg.errors import ModelError
from geoseg.models.card import Normalization
from geoseg.radiometry import Radiometry


@dataclass(frozen=True)
class InputTransform:
    """Raw values of one scene's model bands -> model input.

    Parameters
    ----------
    radiometry : Radiometry
        ``reflectance = value * scale + offset`` per band.
    normalization : Normalization
        The model's function of reflectance.
    """

    radiometry: Radiometry
    normalization: Normalization

    def __post_init__(self) -> None:
        if self.normalization.legacy:
            raise ModelError(
                "the model normalizes each scene by its own statistics, which makes a pixel's "
                "class depend on the rest of the file: retrain it with this geoseg"
            )

    def reflectance_torch(self, raw: torch.Tensor) -> torch.Tensor:
        """Float32 reflectance of an integer or float tensor ``(N, bands, H, W)``."""
        shape = (1, -1, 1, 1)
        scale = torch.tensor(self.radiometry.scale, dtype=torch.float32, device=raw.device)
        offset = torch.tensor(self.radiometry.offset, dtype=torch.float32, device=raw.device)
        return torch.addcmul(offset.view(shape), raw.to(torch.float32), scale.view(shape))

    def apply_torch(self, raw: torch.Tensor) -> torch.Tensor:
        """Model input of a raw tensor ``(N, bands, H, W)``, on its own device."""
        return normalize_reflectance(self.reflectance_torch(raw), self.normalization)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Model input of a raw ``(bands, H, W)`` or ``(N, bands, H, W)`` array, float32."""
        tensor = torch.from_numpy(np.ascontiguousarray(raw).astype(np.float32))
        batched = tensor if tensor.ndim == 4 else tensor[None]
        out = self.apply_torch(batched)
        result: np.ndarray = (out if tensor.ndim == 4 else out[0]).numpy()
        return result


def normalize_reflectance(reflectance: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """The model's input for reflectance ``(N, bands, H, W)`` (float32, any device).

    >>> from geoseg.models.card import Normalization
    >>> x = torch.full((1, 1, 1, 1), 0.1)
    >>> float(normalize_reflectance(x, Normalization(mean=(0.1,), std=(0.05,))).flatten()[0])
    0.0
    """
    shape = (1, -1, 1, 1)
    device = reflectance.device
    mean = torch.tensor(norm.mean or (0.0,), dtype=torch.float32, device=device).view(shape)
    std = torch.tensor(norm.std or (1.0,), dtype=torch.float32, device=device).view(shape)
    if norm.method == "log_sigmoid":
        # sigmoid(((log(1 + gain x) - mean) / std) scale + offset), as one affine map of the log
        # and in place; log(1 + y) rather than log1p, which is 4x slower on the CPU (its error
        # here, y >= 0 in float32, is under 1e-7). Negative reflectance (over-corrected dark
        # water, offsets) has no logarithm: floored at 0.
        logged = reflectance.clamp_min(0.0).mul_(norm.log_gain).add_(1.0).log_()
        gain = norm.sigmoid_scale / std
        return logged.mul_(gain).add_(norm.sigmoid_offset - mean * gain).sigmoid_()
    return ((reflectance - mean) / std).clamp_(norm.clip[0], norm.clip[1])
