"""What fitting a head returns, its loss, and the epoch loop with early stopping: shared by
frozen-feature and fine-tuning training, so a change to either stopping rule is made once."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gencritic.models.assessment_heads import AssessmentHead


@dataclass
class FitResult:
    head: AssessmentHead
    train_loss: list[float]
    val_loss: list[float]
    best_epoch: int
    baseline: AssessmentHead


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the ratings that exist (a missing one is masked, not imputed),
    each task's squared errors scaled by its weight (all 1: the plain masked MSE)."""
    mask = torch.isfinite(target)
    diff = torch.where(mask, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    sq = diff ** 2 if weights is None else diff ** 2 * weights
    return sq.sum() / mask.sum().clamp_min(1)


@dataclass
class EpochLog:
    """Per-epoch losses of an early-stopped fit, the best epoch and what :func:`fit_epochs`'
    ``snapshot`` returned at it."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_state: Any = None


def fit_epochs(n_train: int, epochs: int, batch_size: int, patience: int, gen: torch.Generator,
               step: Callable[[torch.Tensor], float], validate: Callable[[], float],
               set_training: Callable[[bool], object], snapshot: Callable[[], Any]) -> EpochLog:
    """Shuffle ``n_train`` positions each epoch (``gen``), call ``step`` on each batch of them (it
    returns the batch's summed loss), then ``validate``; keep ``snapshot()`` of the best epoch
    (validation loss lower by more than 1e-7) and stop after ``patience`` epochs without one."""
    log = EpochLog(best_state=snapshot())
    best, since = math.inf, 0
    for epoch in range(epochs):
        set_training(True)
        order = torch.randperm(n_train, generator=gen)
        total = 0.0
        for start in range(0, n_train, batch_size):
            total += step(order[start:start + batch_size])
        log.train_loss.append(total / max(n_train, 1))
        set_training(False)
        with torch.no_grad():
            v = validate()
        log.val_loss.append(v)
        if v < best - 1e-7:
            best, log.best_epoch, since = v, epoch, 0
            log.best_state = snapshot()
        else:
            since += 1
            if since >= patience:
                break
    return log
