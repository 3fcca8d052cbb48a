"""Knowledge distillation (Hinton et al. 2015; DistilBERT, Sanh et al. 2019): a student
trained on the teacher's softened distribution as well as on the data.

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, targets)

The T^2 keeps the soft term's gradients the same size as the hard term's whatever T is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.quality.training import Batch, Budget, TrainLog, token_loss, train


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      temperature: float, alpha: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The loss above, the KL term averaged over (masked) positions; logits (B, T, V)."""
    student = F.log_softmax(student_logits.float() / temperature, -1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, -1)
    kl = (teacher.exp() * (teacher - student)).sum(-1)  # (B, T)
    weights = torch.ones_like(kl) if mask is None else mask.float()
    soft = (kl * weights).sum() / weights.sum().clamp(min=1)
    return alpha * temperature ** 2 * soft + (1 - alpha) * token_loss(student_logits, targets, mask)


def distill(student: nn.Module, teacher: nn.Module, next_batch, budget: Budget, temperature: float = 2.0,
            alpha: float = 0.5) -> TrainLog:
    """Train `student` (in place) on `next_batch` with the distillation loss against `teacher` (frozen)."""
    teacher.eval()

    def loss_fn(model: nn.Module, batch: Batch, step: int) -> torch.Tensor:
        inputs, targets, mask = batch
        with torch.no_grad():
            soft_targets = teacher(inputs)
        return distillation_loss(model(inputs), soft_targets, targets, temperature, alpha, mask)

    return train(student, next_batch, budget, loss_fn)
