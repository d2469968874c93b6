"""What fitting a head returns, and its loss: shared by frozen-feature and fine-tuning training."""

from __future__ import annotations

from dataclasses import dataclass

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
