"""Segmentation metrics from one accumulated confusion matrix.

Every metric derives from the confusion matrix ``cm[true, predicted]`` over labelled pixels, so
results over many tiles or scenes are exact sums, never averages of averages. A class that never
occurs in the reference and is never predicted has undefined IoU, precision and recall; it is
reported as ``None`` and left out of the means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class ConfusionMatrix:
    """Accumulates ``cm[true, predicted]`` counts, skipping unlabelled reference pixels.

    Parameters
    ----------
    num_classes : int
        Number of classes (values ``0 .. num_classes - 1``).

    Examples
    --------
    >>> cm = ConfusionMatrix(2)
    >>> cm.update(np.array([0, 0, 1, 255]), np.array([0, 1, 1, 0]))
    >>> cm.matrix.tolist()
    [[1, 1], [0, 1]]
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.missed = np.zeros(num_classes, dtype=np.int64)
        """Per reference class, labelled pixels predicted as no class (nodata)."""

    def update(self, reference: np.ndarray, predicted: np.ndarray) -> None:
        """Add pixels; reference pixels equal to 255 or outside the classes are skipped.

        Predictions outside the classes (e.g. nodata 255 where the reference is labelled) are
        counted as wrong for the reference class without adding a column.
        """
        ref = np.asarray(reference).ravel().astype(np.int64)
        pred = np.asarray(predicted).ravel().astype(np.int64)
        if ref.shape != pred.shape:
            raise ValueError(f"reference has {ref.size} pixels, prediction {pred.size}")
        keep = (ref >= 0) & (ref < self.num_classes)
        ref, pred = ref[keep], pred[keep]
        inside = (pred >= 0) & (pred < self.num_classes)
        n = self.num_classes
        counts = np.bincount(ref[inside] * n + pred[inside], minlength=n * n)
        self.matrix += counts.reshape(n, n)
        self.missed += np.bincount(ref[~inside], minlength=n)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same classes."""
        self.matrix += other.matrix
        self.missed += other.missed


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(n / d) if d > 0 else None for n, d in zip(num, den, strict=True)]


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one evaluation; :meth:`to_dict` is JSON-serialisable.

    Parameters
    ----------
    class_names : tuple of str
        Class names in matrix order.
    confusion : tuple of tuple of int
        ``confusion[true][predicted]``.
    missed : tuple of int
        Per reference class, pixels predicted as nodata.
    """

    class_names: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    missed: tuple[int, ...]

    @classmethod
    def from_confusion(
        cls, matrix: ConfusionMatrix, class_names: Sequence[str]
    ) -> SegmentationMetrics:
        """Freeze a confusion matrix with its class names."""
        return cls(
            tuple(class_names),
            tuple(tuple(int(v) for v in row) for row in matrix.matrix),
            tuple(int(v) for v in matrix.missed),
        )

    @property
    def _cm(self) -> np.ndarray:
        return np.asarray(self.confusion, dtype=np.float64)

    @property
    def support(self) -> list[int]:
        """Labelled reference pixels per class."""
        return [int(v) for v in self._cm.sum(axis=1) + np.asarray(self.missed)]

    @property
    def pixel_accuracy(self) -> float | None:
        """Share of labelled pixels predicted correctly."""
        total = float(sum(self.support))
        return float(np.trace(self._cm) / total) if total else None

    @property
    def recall(self) -> list[float | None]:
        """Per class: correct / reference pixels (producer's accuracy)."""
        return _ratio(np.diag(self._cm), np.asarray(self.support, dtype=np.float64))

    @property
    def precision(self) -> list[float | None]:
        """Per class: correct / predicted pixels (user's accuracy)."""
        return _ratio(np.diag(self._cm), self._cm.sum(axis=0))

    @property
    def f1(self) -> list[float | None]:
        """Per class harmonic mean of precision and recall (equals Dice)."""
        cm = self._cm
        tp = np.diag(cm)
        return _ratio(2 * tp, cm.sum(axis=0) + np.asarray(self.support, dtype=np.float64))

    @property
    def dice(self) -> list[float | None]:
        """Per class Dice coefficient ``2 TP / (2 TP + FP + FN)`` (the same as F1)."""
        return self.f1

    @property
    def iou(self) -> list[float | None]:
        """Per class intersection over union ``TP / (TP + FP + FN)``."""
        cm = self._cm
        tp = np.diag(cm)
        union = cm.sum(axis=0) + np.asarray(self.support, dtype=np.float64) - tp
        return _ratio(tp, union)

    @property
    def miou(self) -> float | None:
        """Mean IoU over classes present in the reference or the prediction."""
        return _mean(self.iou)

    @property
    def mean_accuracy(self) -> float | None:
        """Mean per-class recall over classes present in the reference."""
        return _mean(self.recall)

    @property
    def mean_f1(self) -> float | None:
        """Mean F1 (Dice) over defined classes."""
        return _mean(self.f1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        per_class = {
            name: {
                "iou": self.iou[i],
                "precision": self.precision[i],
                "recall": self.recall[i],
                "f1": self.f1[i],
                "support": self.support[i],
            }
            for i, name in enumerate(self.class_names)
        }
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "miou": self.miou,
            "mean_f1": self.mean_f1,
            "per_class": per_class,
            "confusion_matrix": [list(row) for row in self.confusion],
            "class_names": list(self.class_names),
        }

    def format_table(self) -> str:
        """A fixed-width text table of per-class and overall metrics."""

        def cell(value: float | None) -> str:
            return f"{value:9.3f}" if value is not None else f"{'-':>9}"

        width = max(len("mean class accuracy"), *(len(n) for n in self.class_names))
        head = (
            f"{'class':<{width}} {'IoU':>9} {'precision':>9} {'recall':>9} {'F1':>9} {'pixels':>10}"
        )
        lines = [head, "-" * len(head)]
        for i, name in enumerate(self.class_names):
            lines.append(
                f"{name:<{width}} {cell(self.iou[i])} {cell(self.precision[i])} "
                f"{cell(self.recall[i])} {cell(self.f1[i])} {self.support[i]:>10}"
            )
        lines.append("-" * len(head))
        lines.append(f"{'mIoU':<{width}} {cell(self.miou)}")
        lines.append(f"{'pixel accuracy':<{width}} {cell(self.pixel_accuracy)}")
        lines.append(f"{'mean class accuracy':<{width}} {cell(self.mean_accuracy)}")
        lines.append(f"{'mean F1 (Dice)':<{width}} {cell(self.mean_f1)}")
        return "\n".join(lines)
