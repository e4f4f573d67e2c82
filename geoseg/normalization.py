"""Turning raw scene values into model input, identically in training and prediction.

Two fixed steps, per band and per pixel: the scene's radiometry turns stored values into
reflectance (:mod:`geoseg.radiometry`, decided from metadata), then the model's normalization
turns reflectance into input (:class:`geoseg.models.card.Normalization`). Nothing depends on the
rest of the file, so a tile, a crop or a tile archive gives every pixel the same input as the
whole scene.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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

    def reflectance_torch(
        self, raw: torch.Tensor, bands: tuple[int, ...] | None = None
    ) -> torch.Tensor:
        """Float32 reflectance of an integer or float tensor ``(N, bands, H, W)``.

        With ``bands``, ``raw`` holds only those of the model's bands, in that order.
        """
        shape = (1, -1, 1, 1)
        scales, offsets = self.radiometry.scale, self.radiometry.offset
        if bands is not None:
            scales, offsets = tuple(scales[b] for b in bands), tuple(offsets[b] for b in bands)
        scale = torch.tensor(scales, dtype=torch.float32, device=raw.device)
        offset = torch.tensor(offsets, dtype=torch.float32, device=raw.device)
        return torch.addcmul(offset.view(shape), raw.to(torch.float32), scale.view(shape))

    def apply_torch(self, raw: torch.Tensor) -> torch.Tensor:
        """Model input of a raw tensor ``(N, bands, H, W)``, on its own device."""
        return normalize_reflectance(self.reflectance_torch(raw), self.normalization)

    def apply_by_table(self, raw: np.ndarray) -> np.ndarray | None:
        """Model input of an 8- or 16-bit integer array ``(N, bands, H, W)``; ``None`` for others.

        Every value such a band can hold is transformed once (:meth:`value_table`) and each pixel
        looked up: one pass over the chip on one core instead of the transform's eight over its
        floats (a 9 x 512 x 512 uint16 chip: 5 ms against 21-24 ms). The values are
        :meth:`apply_torch`'s, to a unit in the last place (ATen's vectorised and scalar log
        and sigmoid can round a value differently).
        """
        table = self.value_table(raw.dtype)
        if table is None:
            return None
        # int16 values are looked up by their bits, which the table is ordered by
        keys = raw.view(np.uint16) if raw.dtype == np.int16 else raw
        out = np.empty(raw.shape, np.float32)
        for band in range(raw.shape[1]):
            # every key is in the table: "clip" only spares numpy's buffered bounds check (-35%)
            np.take(table[band], keys[:, band], out=out[:, band], mode="clip")
        return out

    def value_table(self, dtype: np.dtype) -> np.ndarray | None:
        """Model input ``(bands, values)`` of every value of ``dtype`` (uint8, uint16, int16).

        ``None`` for other types. Made once per transform and type (256 kB a band for 16 bits).
        """
        name = np.dtype(dtype).name
        return _value_table(self, name) if name in _TABLE_VALUES else None

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Model input of a raw ``(bands, H, W)`` or ``(N, bands, H, W)`` array, float32."""
        tensor = torch.from_numpy(np.ascontiguousarray(raw).astype(np.float32))
        batched = tensor if tensor.ndim == 4 else tensor[None]
        out = self.apply_torch(batched)
        result: np.ndarray = (out if tensor.ndim == 4 else out[0]).numpy()
        return result


#: Every value of the integer types :meth:`InputTransform.value_table` serves, in the order
#: their bits (as unsigned integers) index the table.
_TABLE_VALUES: dict[str, Callable[[], np.ndarray]] = {
    "uint8": lambda: np.arange(256, dtype=np.uint8),
    "uint16": lambda: np.arange(65536, dtype=np.uint16),
    "int16": lambda: np.arange(65536, dtype=np.uint16).view(np.int16),
}


@functools.lru_cache(maxsize=16)
def _value_table(transform: InputTransform, dtype: str) -> np.ndarray:
    values = torch.from_numpy(_TABLE_VALUES[dtype]().astype(np.float32))
    bands = len(transform.radiometry.scale)
    raw = values.view(1, 1, 1, -1).expand(1, bands, 1, -1).contiguous()
    table: np.ndarray = transform.apply_torch(raw)[0, :, 0, :].contiguous().numpy()
    table.flags.writeable = False  # shared by every chip of the run
    return table


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
