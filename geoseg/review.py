"""Where an analyst should look first: the polygons most worth reviewing, ranked.

The least confident polygons first, among those large enough to matter (``min_area_m2``): the
confidence ranks pixels well but is not a probability of being right (on s2-virginia's held-out
third, the bottom tenth of the pixels by confidence agrees with the teacher on 74%, the rest on
98-100%), so a low mean is the signal, and a small sliver is not worth an analyst's time. The
ranking is pure: :mod:`geoseg.io.review_candidates` reads the GeoPackage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoseg.errors import ConfigError


@dataclass(frozen=True)
class ReviewItem:
    """One polygon to look at.

    Parameters
    ----------
    fid : int
        Its feature id in the layer (QGIS shows it; ``"fid" = N`` selects it).
    class_name : str
        The class it was mapped as.
    area_m2 : float
        Its ground area.
    confidence : float
        Its mean confidence, percent.
    x, y : float
        A point inside it, in the layer's CRS (to zoom to).
    """

    fid: int
    class_name: str
    area_m2: float
    confidence: float
    x: float
    y: float


def rank_for_review(
    fids: np.ndarray,
    class_names: np.ndarray,
    areas_m2: np.ndarray,
    confidences: np.ndarray,
    reviewed: np.ndarray,
    points: np.ndarray,
    top: int = 20,
    min_area_m2: float = 10_000.0,
) -> list[ReviewItem]:
    """The ``top`` unreviewed polygons of at least ``min_area_m2``, least confident first.

    Polygons already reviewed, or without a confidence (no pixel centre inside), are skipped;
    equal confidences put the larger polygon first.

    >>> items = rank_for_review(
    ...     np.array([1, 2, 3, 4]), np.array(["water", "forest", "urban", "other"]),
    ...     np.array([20000.0, 50000.0, 20000.0, 500.0]), np.array([60.0, 45.0, 30.0, 20.0]),
    ...     np.array([False, False, True, False]), np.zeros((4, 2)), top=2)
    >>> [(i.fid, i.confidence) for i in items]
    [(2, 45.0), (1, 60.0)]
    """
    if top < 1:
        raise ConfigError(f"--top {top} must be at least 1")
    if min_area_m2 < 0:
        raise ConfigError(f"--min-area {min_area_m2} must be >= 0")
    confidence = np.asarray(confidences, dtype=np.float64)
    area = np.asarray(areas_m2, dtype=np.float64)
    usable = ~np.asarray(reviewed, dtype=bool) & np.isfinite(confidence) & (area >= min_area_m2)
    candidates = np.flatnonzero(usable)
    order = candidates[np.lexsort((-area[candidates], confidence[candidates]))][:top]
    return [
        ReviewItem(
            int(fids[i]),
            str(class_names[i]),
            float(area[i]),
            float(confidence[i]),
            float(points[i][0]),
            float(points[i][1]),
        )
        for i in order
    ]
