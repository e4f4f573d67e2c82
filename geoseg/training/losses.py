"""Segmentation losses, by name.

Every hard-label loss takes logits ``(N, C, H, W)`` and integer targets ``(N, H, W)`` where
:data:`~geoseg.io.labels.IGNORE` (255) marks unlabelled pixels, which contribute nothing. The
distillation loss takes the teacher's probabilities ``(N, C, H, W)`` and a validity mask instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geoseg.core import NODATA as IGNORE_INDEX
from geoseg.errors import ConfigError


class CrossEntropyLoss(nn.Module):
    """Cross-entropy with optional class weights, ignoring unlabelled pixels.

    Parameters
    ----------
    class_weights : sequence of float, optional
        One weight per class: raise rare classes (urban) so they are not drowned by common ones.
    label_smoothing : float
        Label smoothing as in :func:`torch.nn.functional.cross_entropy`.
    """

    def __init__(
        self, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        weight = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights else None
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over labelled pixels (0 if none is labelled)."""
        if not bool((target != IGNORE_INDEX).any()):
            return logits.sum() * 0.0
        weight = self.weight if isinstance(self.weight, torch.Tensor) else None
        return F.cross_entropy(
            logits.float(),
            target,
            weight=weight,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.label_smoothing,
        )


def _probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax probabilities, one-hot target and the labelled mask, all ``(N, C, H, W)``-ready."""
    classes = logits.shape[1]
    valid = target != IGNORE_INDEX
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, classes).permute(0, 3, 1, 2).float()
    mask = valid.unsqueeze(1).float()
    probs = logits.float().softmax(dim=1)
    return probs * mask, onehot * mask, mask


class TverskyLoss(nn.Module):
    """Tversky loss, ``1 - TP / (TP + alpha FP + beta FN)`` averaged over classes present.

    With ``alpha = beta = 0.5`` this is the soft Dice loss. ``gamma`` != 1 gives the focal Tversky
    loss ``(1 - TI) ** gamma``, which (with gamma < 1, as in Abraham and Khan 2019) focuses on
    classes that are still poorly segmented.

    Parameters
    ----------
    alpha, beta : float
        Weights of false positives and false negatives.
    gamma : float
        Focal exponent.
    smooth : float
        Additive smoothing of numerator and denominator.
    """

    def __init__(
        self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0, smooth: float = 1.0
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the classes that occur in the target or the prediction."""
        probs, onehot, _ = _probs_and_onehot(logits, target)
        dims = (0, 2, 3)
        tp = (probs * onehot).sum(dims)
        fp = (probs * (1 - onehot)).sum(dims)
        fn = ((1 - probs) * onehot).sum(dims)
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        loss = (1 - index).clamp(min=0) ** self.gamma
        present = (onehot.sum(dims) + probs.sum(dims)) > 0
        if not bool(present.any()):
            return logits.sum() * 0.0
        return loss[present].mean()


class DiceLoss(TverskyLoss):
    """Soft Dice loss: the Tversky loss with ``alpha = beta = 0.5``."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__(alpha=0.5, beta=0.5, gamma=1.0, smooth=smooth)


class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (defaults of Abraham and Khan 2019: alpha 0.3, beta 0.7, gamma 0.75)."""

    def __init__(
        self, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75, smooth: float = 1.0
    ) -> None:
        super().__init__(alpha=alpha, beta=beta, gamma=gamma, smooth=smooth)


class FocalLoss(nn.Module):
    """Focal loss ``-(1 - p_t) ** gamma * log p_t`` (Lin et al. 2017), ignoring unlabelled pixels.

    Parameters
    ----------
    gamma : float
        Focusing exponent; 0 gives cross-entropy.
    class_weights : sequence of float, optional
        Per-class weights (the ``alpha`` of the paper, one per class).
    """

    def __init__(self, gamma: float = 2.0, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        weight = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights else None
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over labelled pixels (0 if none is labelled)."""
        valid = target != IGNORE_INDEX
        if not bool(valid.any()):
            return logits.sum() * 0.0
        safe = torch.where(valid, target, torch.zeros_like(target))
        logp = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        weight = self.weight if isinstance(self.weight, torch.Tensor) else None
        if weight is not None:
            loss = loss * weight[safe]
        return loss[valid].mean()


class DistillationLoss(nn.Module):
    """Soft cross-entropy against teacher probabilities, with temperature.

    ``T**2 * sum_c -q_c log softmax(z / T)_c`` averaged over valid pixels, where ``q`` are the
    teacher's probabilities (softened by ``T`` as well: ``q ** (1/T)`` renormalized). The entropy
    of ``q`` is a constant, so this has the gradients of ``KL(q || p)``; the ``T**2`` keeps
    gradient size independent of ``T`` (Hinton et al. 2015).

    Parameters
    ----------
    temperature : float
        Softening temperature (1 uses the probabilities as they are).
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"distillation temperature {temperature} must be > 0")
        self.temperature = temperature

    def forward(
        self, logits: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean over pixels where ``valid`` (``(N, H, W)`` bool) and the teacher has mass."""
        t = self.temperature
        q = teacher.float().clamp(min=0)
        mask = q.sum(dim=1) > 1e-6
        if t != 1.0:
            q = q.clamp(min=1e-8) ** (1.0 / t)
        mass = q.sum(dim=1)
        if valid is not None:
            mask &= valid
        if not bool(mask.any()):
            return logits.sum() * 0.0
        q = q / mass.clamp(min=1e-6).unsqueeze(1)
        logp = F.log_softmax(logits.float() / t, dim=1)
        per_pixel = -(q * logp).sum(dim=1)
        return per_pixel[mask].mean() * (t * t)


class ViewLoss(nn.Module):
    """Cross-entropy of the classes a prediction delivers: the model's groups, not its classes.

    Prediction sums each group's class probabilities and delivers the most probable group
    (:class:`geoseg.models.card.Legend`), so a model may get every pixel's top class right and
    still deliver the wrong group where probability is spread within one (trees 0.4, grass 0.3,
    crops 0.3 is delivered as farmland). This loss scores what is delivered: ``-log`` of the
    summed probability of the target class's group.

    Parameters
    ----------
    matrix : sequence of sequence of float
        ``(classes, groups)`` 0/1 matrix of the view (:meth:`Legend.matrix`).
    """

    matrix: torch.Tensor
    group_of: torch.Tensor

    def __init__(self, matrix: Sequence[Sequence[float]]) -> None:
        super().__init__()
        table = torch.tensor([list(row) for row in matrix], dtype=torch.float32)
        if table.ndim != 2 or not bool((table.sum(dim=1) == 1).all()):
            raise ConfigError("a view puts every class in exactly one group")
        self.register_buffer("matrix", table)
        self.register_buffer("group_of", table.argmax(dim=1))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over labelled pixels (0 if none is labelled)."""
        valid = target != IGNORE_INDEX
        if not bool(valid.any()):
            return logits.sum() * 0.0
        probs = logits.float().softmax(dim=1)
        grouped = torch.einsum("nchw,ck->nkhw", probs, self.matrix)
        group = self.group_of[torch.where(valid, target, torch.zeros_like(target)).long()]
        picked = grouped.gather(1, group.unsqueeze(1)).squeeze(1)
        return -picked[valid].clamp(min=1e-8).log().mean()


LossBuilder = Callable[..., nn.Module]

LOSSES: dict[str, LossBuilder] = {
    "ce": CrossEntropyLoss,
    "focal": FocalLoss,
    "dice": DiceLoss,
    "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss,
}
"""Hard-label losses by name; ``class_weights`` is passed to those that accept it."""

_TAKES_CLASS_WEIGHTS = {"ce", "focal"}


def build_loss(
    name: str, class_weights: Sequence[float] = (), params: Mapping[str, Any] | None = None
) -> nn.Module:
    """Build a hard-label loss by name.

    Raises
    ------
    ConfigError
        If the name is unknown or a parameter does not fit; the message lists the options.
    """
    try:
        builder = LOSSES[name]
    except KeyError:
        options = ", ".join(sorted(LOSSES))
        raise ConfigError(f"unknown loss {name!r}; available options are: {options}") from None
    kwargs = dict(params or {})
    if class_weights:
        if name not in _TAKES_CLASS_WEIGHTS:
            raise ConfigError(f"loss {name!r} takes no class_weights (only ce and focal do)")
        kwargs["class_weights"] = tuple(class_weights)
    try:
        return builder(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"loss {name!r}: {exc}") from exc


class TrainingObjective(nn.Module):
    """Hard-label loss plus optional distillation from the teacher's probabilities and a view loss.

    Parameters
    ----------
    hard : nn.Module
        A loss from :func:`build_loss`.
    hard_weight : float
        Its weight.
    distillation : float
        Weight of :class:`DistillationLoss` (0 disables it).
    temperature : float
        Distillation temperature.
    view : ViewLoss, optional
        The delivered view's loss against the same hard targets.
    view_weight : float
        Its weight (0 disables it).
    margin : int
        Pixels along each edge of a patch that no term scores (their targets count as
        unlabelled): they see zero padding where prediction sees real context.
    """

    def __init__(
        self,
        hard: nn.Module,
        hard_weight: float = 1.0,
        distillation: float = 0.0,
        temperature: float = 1.0,
        view: ViewLoss | None = None,
        view_weight: float = 0.0,
        margin: int = 0,
    ) -> None:
        super().__init__()
        self.hard = hard
        self.hard_weight = hard_weight
        self.distillation = distillation
        self.soft = DistillationLoss(temperature)
        self.view = view
        self.view_weight = view_weight
        self.margin = margin

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Weighted sum of the terms; the soft term only counts where the target is labelled."""
        if self.margin > 0:
            inner = torch.full_like(target, IGNORE_INDEX)
            m = self.margin
            inner[..., m:-m, m:-m] = target[..., m:-m, m:-m]
            target = inner
        loss: torch.Tensor = self.hard(logits, target) * self.hard_weight
        if self.distillation > 0 and teacher is not None:
            loss = loss + self.distillation * self.soft(logits, teacher, target != IGNORE_INDEX)
        if self.view is not None and self.view_weight > 0:
            loss = loss + self.view_weight * self.view(logits, target)
        return loss
