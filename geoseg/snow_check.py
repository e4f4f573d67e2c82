"""Snow only where snow can be: the physical test every snow_and_ice pixel must pass.

Dynamic World, and the students distilled from it, call bright ground that is not snow
``snow_and_ice``: beaches, caravan parks and roofs, haze and cloud. On the teacher's own training
scenes 100% of its snow in May at Aberystwyth (13,023 px), 69% in Brandenburg (February) and 47%
in Virginia fails the snow test below. Geoseg's five-class view counts snow as "other", so those
towns and beaches are delivered as other rather than urban or bare.

Snow is bright in the visible and dark in the short-wave infrared; water is dark in the near
infrared. The test is SNOMAP's (Hall, Riggs and Salomonson 1995, the MODIS snow algorithm): a
pixel may be snow only where NDSI = (green - swir16) / (green + swir16) >= 0.4, near-infrared
reflectance > 0.11 and green reflectance > 0.10. Where it fails, the snow class's probability is
set to 0 and the others renormalized (its logit to a large negative number): the pixel takes the
class the model ranks next. Per pixel, from the pixel's own reflectance: a tile gets the same
answer as the whole scene.

A model is checked when its classes include ``snow_and_ice`` and its bands include green, nir and
swir16 (``landcover-s2-dw``, ``landcover-s2-dw6``); the RGB and RGBN models have no short-wave
infrared and are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geoseg.models.card import ModelCard

SNOW_CLASS = "snow_and_ice"
"""The class the test applies to."""

TEST_BANDS = ("green", "nir", "swir16")
"""The bands the test reads, in this order."""

MIN_NDSI = 0.4
MIN_NIR = 0.11
MIN_GREEN = 0.10
#: Logit given to snow where it cannot be: far below any real logit, finite (no NaN in sums).
RULED_OUT_LOGIT = -1.0e4

DESCRIPTION = (
    f"{SNOW_CLASS} only where NDSI >= {MIN_NDSI}, nir > {MIN_NIR} and green > {MIN_GREEN} "
    "(SNOMAP); elsewhere the next most probable class"
)


@dataclass(frozen=True)
class SnowCheck:
    """Where a model's snow class is ruled out, and how.

    Parameters
    ----------
    class_index : int
        The snow class among the model's classes (channel of its logits).
    bands : tuple of int
        Indexes of green, nir and swir16 among the model's bands.
    """

    class_index: int
    bands: tuple[int, int, int]

    @classmethod
    def for_model(cls, classes: Sequence[str], bands: Sequence[str]) -> SnowCheck | None:
        """The check of a model with these class and band names; ``None`` where it cannot run."""
        if SNOW_CLASS not in classes or not all(b in bands for b in TEST_BANDS):
            return None
        green, nir, swir = (list(bands).index(b) for b in TEST_BANDS)
        return cls(list(classes).index(SNOW_CLASS), (green, nir, swir))

    @classmethod
    def for_card(cls, card: ModelCard) -> SnowCheck | None:
        """The check of the model ``card`` describes (:meth:`for_model` of its names)."""
        return cls.for_model([c.name for c in card.classes], card.bands)

    def impossible(self, reflectance: torch.Tensor) -> torch.Tensor:
        """Boolean ``(N, H, W)``: where snow fails the test, of reflectance ``(N, bands, H, W)``.

        ``reflectance`` holds the model's bands (or just green, nir and swir16 in that order,
        when it has three).
        """
        picked = reflectance if reflectance.shape[1] == 3 else reflectance[:, list(self.bands)]
        green, nir, swir = picked.float().unbind(dim=1)
        # NDSI >= t  <=>  green - swir >= t (green + swir) where green + swir > 0, as green > 0.1
        ndsi_ok = (green - swir) >= MIN_NDSI * (green + swir)
        possible = ndsi_ok & (nir > MIN_NIR) & (green > MIN_GREEN)
        return ~possible

    def rule_out_logits(self, logits: torch.Tensor, reflectance: torch.Tensor) -> torch.Tensor:
        """``logits`` ``(N, classes, H, W)`` with snow's set very low where it fails, in place."""
        where = self.impossible(reflectance)
        logits[:, self.class_index].masked_fill_(where, RULED_OUT_LOGIT)
        return logits

    def rule_out_probabilities(
        self, probabilities: np.ndarray, reflectance: np.ndarray
    ) -> np.ndarray:
        """``(classes, H, W)`` probabilities with snow's moved to the others where it fails.

        Parameters
        ----------
        probabilities : np.ndarray
            Float ``(classes, H, W)``; changed in place and returned.
        reflectance : np.ndarray
            ``(bands, H, W)`` reflectance of the model's bands (or green, nir, swir16).
        """
        tensor = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))[None]
        where = self.impossible(tensor)[0].numpy()
        snow = probabilities[self.class_index]
        rest = 1.0 - snow[where]
        snow[where] = 0.0
        # the remaining classes keep their ratios; a pixel that was all snow keeps zeros
        scale = np.where(rest > 0, 1.0 / np.maximum(rest, 1e-12), 0.0).astype(probabilities.dtype)
        probabilities[:, where] *= scale
        return probabilities
