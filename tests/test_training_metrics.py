"""Metrics from hand-computed confusion matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoseg.training.metrics import ConfusionMatrix, SegmentationMetrics


def metrics_of(reference: list[int], predicted: list[int], classes: int = 3) -> SegmentationMetrics:
    cm = ConfusionMatrix(classes)
    cm.update(np.array(reference), np.array(predicted))
    return SegmentationMetrics.from_confusion(cm, [f"c{i}" for i in range(classes)])


def test_confusion_counts_and_ignores_255() -> None:
    m = metrics_of([0, 0, 1, 1, 2, 255], [0, 1, 1, 1, 0, 2])
    assert [list(r) for r in m.confusion] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_hand_computed_values() -> None:
    # cm = [[1,1,0],[0,2,0],[1,0,0]]
    m = metrics_of([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    assert m.pixel_accuracy == pytest.approx(3 / 5)
    assert m.recall == pytest.approx([1 / 2, 1.0, 0.0])
    assert m.precision[0] == pytest.approx(1 / 2)
    assert m.precision[1] == pytest.approx(2 / 3)
    assert m.precision[2] is None  # never predicted
    assert m.iou == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert m.miou == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert m.f1[1] == pytest.approx(2 * 2 / (3 + 2))
    assert m.dice == m.f1
    assert m.mean_accuracy == pytest.approx(0.5)


def test_absent_class_is_left_out_of_means() -> None:
    m = metrics_of([0, 1], [0, 1])
    assert m.iou == [1.0, 1.0, None]
    assert m.miou == 1.0


def test_prediction_of_nodata_counts_as_miss() -> None:
    m = metrics_of([0, 0], [0, 255], classes=2)
    assert m.recall[0] == 0.5
    assert m.pixel_accuracy == 0.5
    assert m.iou[0] == 0.5


def test_merge_equals_one_big_update() -> None:
    rng = np.random.default_rng(0)
    ref, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    whole = ConfusionMatrix(4)
    whole.update(ref, pred)
    a, b = ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(ref[:77], pred[:77])
    b.update(ref[77:], pred[77:])
    a.merge(b)
    assert (a.matrix == whole.matrix).all()


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="pixels"):
        ConfusionMatrix(2).update(np.zeros(3), np.zeros(4))


def test_json_and_table() -> None:
    m = metrics_of([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    data = json.loads(json.dumps(m.to_dict()))
    assert data["per_class"]["c1"]["iou"] == pytest.approx(2 / 3)
    assert data["confusion_matrix"][0] == [1, 1, 0]
    table = m.format_table()
    assert "mIoU" in table and "c2" in table and "-" in table.splitlines()[4]
