"""Losses: known values, ignored pixels, finite gradients, the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geoseg.errors import ConfigError
from geoseg.training.losses import (
    LOSSES,
    CrossEntropyLoss,
    DiceLoss,
    DistillationLoss,
    FocalLoss,
    FocalTverskyLoss,
    TrainingObjective,
    TverskyLoss,
    ViewLoss,
    build_loss,
)

IGNORE = 255


def confident_logits(target: torch.Tensor, classes: int = 3, margin: float = 30.0) -> torch.Tensor:
    safe = torch.where(target == IGNORE, torch.zeros_like(target), target)
    return F.one_hot(safe, classes).permute(0, 3, 1, 2).float() * margin


@pytest.fixture
def target() -> torch.Tensor:
    t = torch.tensor([[[0, 1, 2, 1], [2, 2, 0, IGNORE]]])
    return t


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_perfect_prediction_costs_nothing(name: str, target: torch.Tensor) -> None:
    loss = build_loss(name)(confident_logits(target), target)
    assert float(loss) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_wrong_prediction_costs_more_and_gradients_are_finite(
    name: str, target: torch.Tensor
) -> None:
    logits = confident_logits((target + 1) % 3, margin=5.0).requires_grad_(True)
    loss = build_loss(name)(logits, target)
    assert float(loss.detach()) > 0.3
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_cross_entropy_of_uniform_logits_is_log_classes(target: torch.Tensor) -> None:
    loss = CrossEntropyLoss()(torch.zeros(1, 3, 2, 4), target)
    assert float(loss) == pytest.approx(math.log(3), rel=1e-5)


def test_ignored_pixels_do_not_count(target: torch.Tensor) -> None:
    logits = confident_logits(target)
    logits[0, :, 1, 3] = torch.tensor([-50.0, 50.0, -50.0])  # wrong only where ignored
    for loss in (CrossEntropyLoss(), FocalLoss(), DiceLoss(), TverskyLoss()):
        assert float(loss(logits, target)) == pytest.approx(0.0, abs=1e-4)


def test_all_ignored_gives_zero_with_gradient() -> None:
    target = torch.full((1, 2, 2), IGNORE)
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    for loss in (CrossEntropyLoss(), FocalLoss(), DiceLoss()):
        value = loss(logits, target)
        assert float(value.detach()) == 0.0
        value.backward()


def test_class_weights_scale_cross_entropy() -> None:
    target = torch.tensor([[[0, 1]]])
    logits = torch.zeros(1, 2, 1, 2)
    weighted = CrossEntropyLoss((1.0, 3.0))(logits, target)
    # weighted mean of equal per-pixel losses is the same loss
    assert float(weighted) == pytest.approx(math.log(2), rel=1e-5)
    logits[0, 0, 0, 1] = 2.0  # pixel of class 1 now worse
    plain = float(CrossEntropyLoss()(logits, target))
    heavy = float(CrossEntropyLoss((1.0, 3.0))(logits, target))
    assert heavy > plain


def test_focal_with_gamma_zero_is_cross_entropy(target: torch.Tensor) -> None:
    logits = torch.randn(1, 3, 2, 4, generator=torch.Generator().manual_seed(0))
    assert float(FocalLoss(gamma=0.0)(logits, target)) == pytest.approx(
        float(CrossEntropyLoss()(logits, target)), rel=1e-5
    )


def test_dice_known_value() -> None:
    # two classes, probabilities 0.5 everywhere: per class TP = 0.5 n_c, FP = 0.5 (n - n_c)
    target = torch.tensor([[[0, 0, 0, 1]]])
    logits = torch.zeros(1, 2, 1, 4)
    loss = DiceLoss(smooth=0.0)(logits, target)
    # class 0: TP 1.5, FP 0.5, FN 1.5 -> 2*1.5/(3+2) = 0.6; class 1: TP .5 FP 1.5 FN .5 -> 1/3
    expected = 1 - (0.6 + 1 / 3) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_focal_tversky_is_tversky_to_a_power() -> None:
    target = torch.tensor([[[0, 0, 1, 1]]])
    logits = torch.tensor([[[[1.0, 0.0, 0.0, -1.0]], [[0.0, 0.0, 1.0, 0.0]]]])
    t = TverskyLoss(0.3, 0.7, 1.0)(logits, target)
    ft = FocalTverskyLoss(0.3, 0.7, 2.0)(logits, target)
    assert 0 < float(ft) < float(t)


def test_distillation_minimum_is_the_teacher_entropy() -> None:
    teacher = torch.tensor([0.7, 0.2, 0.1]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    matching = DistillationLoss()(teacher.log(), teacher)
    entropy = -(teacher[0, :, 0, 0] * teacher[0, :, 0, 0].log()).sum()
    assert float(matching) == pytest.approx(float(entropy), rel=1e-5)
    other = DistillationLoss()(torch.zeros(1, 3, 2, 2), teacher)
    assert float(other) > float(matching)


def test_distillation_skips_masked_and_massless_pixels() -> None:
    teacher = torch.zeros(1, 3, 1, 2)
    teacher[0, 0, 0, 0] = 1.0
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 0, 0, 0] = 40.0
    assert float(DistillationLoss()(logits, teacher)) == pytest.approx(0.0, abs=1e-4)
    assert float(DistillationLoss(2.0)(logits, teacher)) < 0.05
    valid = torch.tensor([[[False, True]]])
    assert float(DistillationLoss()(logits, teacher, valid)) == 0.0


def test_objective_adds_distillation(target: torch.Tensor) -> None:
    logits = torch.randn(1, 3, 2, 4, generator=torch.Generator().manual_seed(1))
    teacher = torch.softmax(torch.randn(1, 3, 2, 4), dim=1)
    hard = CrossEntropyLoss()
    only_hard = TrainingObjective(hard)(logits, target, teacher)
    both = TrainingObjective(hard, distillation=0.5)(logits, target, teacher)
    assert float(both) > float(only_hard)


# four classes in two groups: {0, 1} and {2, 3}
VIEW = ((1.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, 1.0))


def test_view_loss_scores_the_delivered_group_not_the_top_class() -> None:
    target = torch.tensor([[[0]]])
    # top class right (0 at 0.4) but the other group sums to 0.6: delivered wrong
    spread = torch.tensor([0.4, 0.0, 0.3, 0.3]).clamp(min=1e-6).log().view(1, 4, 1, 1)
    # top class wrong (1 at 0.55) but the right group sums to 0.9: delivered right
    grouped = torch.tensor([0.35, 0.55, 0.05, 0.05]).log().view(1, 4, 1, 1)
    view, hard = ViewLoss(VIEW), CrossEntropyLoss()
    assert float(view(spread, target)) == pytest.approx(-math.log(0.4), rel=1e-4)
    assert float(view(grouped, target)) == pytest.approx(-math.log(0.9), rel=1e-4)
    assert float(view(grouped, target)) < float(view(spread, target))
    # where the class loss ranks them the other way
    assert float(hard(grouped, target)) > float(hard(spread, target))


def test_view_loss_ignores_unlabelled_pixels_and_has_gradients() -> None:
    target = torch.tensor([[[3, IGNORE], [1, IGNORE]]])
    logits = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(2), requires_grad=True)
    loss = ViewLoss(VIEW)(logits, target)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert float(logits.grad[..., 1].abs().sum()) == 0.0  # the ignored column
    probs = logits.detach().softmax(dim=1)
    expected = -(probs[0, 2:, 0, 0].sum().log() + probs[0, :2, 1, 0].sum().log()) / 2
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    nothing = torch.full((1, 2, 2), IGNORE)
    assert float(ViewLoss(VIEW)(logits, nothing).detach()) == 0.0
    with pytest.raises(ConfigError, match="exactly one group"):
        ViewLoss(((1.0, 1.0), (0.0, 1.0)))


def test_objective_adds_the_view_loss() -> None:
    target = torch.tensor([[[0, 2], [3, 1]]])
    logits = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(3))
    hard = CrossEntropyLoss()
    alone = float(TrainingObjective(hard)(logits, target))
    both = float(TrainingObjective(hard, view=ViewLoss(VIEW), view_weight=0.5)(logits, target))
    assert both == pytest.approx(alone + 0.5 * float(ViewLoss(VIEW)(logits, target)), rel=1e-5)


def test_objective_margin_scores_only_the_patch_interior() -> None:
    generator = torch.Generator().manual_seed(4)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    teacher = torch.softmax(torch.randn(2, 3, 8, 8, generator=generator), dim=1)
    objective = TrainingObjective(
        CrossEntropyLoss(), distillation=0.5, view=ViewLoss(VIEW[:3]), view_weight=0.5, margin=2
    )
    logits = torch.randn(2, 3, 8, 8, generator=generator, requires_grad=True)
    loss = objective(logits, target, teacher)
    loss.backward()
    assert logits.grad is not None
    border = torch.ones(8, 8, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    # no term reaches a pixel of the margin; every interior pixel is scored
    assert float(logits.grad[..., border].abs().sum()) == 0.0
    assert bool((logits.grad[..., ~border].abs().sum(dim=1) > 0).all())
    # and the interior is scored as the whole of a patch that small would be
    inner = TrainingObjective(
        CrossEntropyLoss(), distillation=0.5, view=ViewLoss(VIEW[:3]), view_weight=0.5
    )
    expected = inner(logits[..., 2:-2, 2:-2], target[..., 2:-2, 2:-2], teacher[..., 2:-2, 2:-2])
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert bool((target != IGNORE).all())  # the caller's target is left as it was


def test_registry_errors_name_the_options() -> None:
    with pytest.raises(ConfigError, match="available options are: ce, dice"):
        build_loss("lovasz")
    with pytest.raises(ConfigError, match="class_weights"):
        build_loss("dice", class_weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="loss 'ce'"):
        build_loss("ce", params={"gamma": 2})
    with pytest.raises(ConfigError, match="temperature"):
        DistillationLoss(0.0)
