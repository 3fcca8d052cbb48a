"""A small, seeded training loop and evaluation for next-token models.

The loop is the same for every task: AdamW, linear warm-up, gradient
clipping, a loss that may count only masked positions, and a loss curve
sampled every `record_every` steps. Budgets are in steps (repeatable) and
optionally seconds (a cap; not repeatable across machines).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

# A batch: inputs (B, T) long, targets (B, T) long, mask (B, T) bool or None (all positions count).
Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


@dataclass(frozen=True)
class Budget:
    steps: int = 200
    seconds: float | None = None  # stop earlier when this much wall time has passed
    lr: float = 3e-3
    warmup_steps: int = 20
    grad_clip: float | None = 1.0  # None: no clipping (to see raw stability)
    record_every: int = 10


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)  # loss every `record_every` steps, from step 0
    steps: int = 0
    seconds: float = 0.0

    @property
    def diverged(self) -> bool:
        """A non-finite loss, or a final loss above the initial one."""
        finite = all(math.isfinite(x) for x in self.losses)
        return not finite or (len(self.losses) > 1 and self.losses[-1] > self.losses[0])


def token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None,
               ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy (nats) over the positions where `mask` is True (all if None)."""
    if mask is not None:
        targets = targets.masked_fill(~mask, ignore_index)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=ignore_index)


def train(model: nn.Module, next_batch: Callable[[int], Batch], budget: Budget,
          loss_fn: Callable[[nn.Module, Batch, int], torch.Tensor] | None = None) -> TrainLog:
    """Train `model` in place on `next_batch(step)`; stops at the step budget, the time
    budget, or the first non-finite loss. `loss_fn(model, batch, step)` defaults to the
    next-token loss plus the model's auxiliary loss (MoE balancing)."""
    loss_fn = loss_fn or lm_loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, budget.warmup_steps)))
    log, start = TrainLog(), time.perf_counter()
    device = next(model.parameters()).device
    model.train()
    for step in range(budget.steps):
        batch = tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in next_batch(step))
        loss = loss_fn(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if budget.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), budget.grad_clip)
        optimizer.step()
        schedule.step()
        value = loss.item()
        log.steps = step + 1
        if step % budget.record_every == 0 or not math.isfinite(value):
            log.losses.append(value)
        if not math.isfinite(value) or (budget.seconds and time.perf_counter() - start > budget.seconds):
            break
    if log.losses and (log.steps - 1) % budget.record_every and math.isfinite(log.losses[-1]):
        log.losses.append(value)  # always end the curve with the last step's loss
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


def lm_loss(model: nn.Module, batch: Batch, step: int) -> torch.Tensor:
    inputs, targets, mask = batch
    loss = token_loss(model(inputs), targets, mask)
    aux = getattr(model, "aux_loss", None)
    return loss + aux() if callable(aux) else loss


@torch.no_grad()
def mean_nll(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
             batch: int = 16) -> float:
    """Mean negative log-likelihood (nats per counted token) over all rows, in chunks of `batch`."""
    total, count, device = 0.0, 0, next(model.parameters()).device
    for i in range(0, len(inputs), batch):
        m = None if mask is None else mask[i:i + batch].to(device)
        logits = model(inputs[i:i + batch].to(device)).float()
        nll = F.cross_entropy(logits.flatten(0, 1), targets[i:i + batch].to(device).flatten(), reduction="none")
        weights = torch.ones_like(nll) if m is None else m.flatten().float()
        total += float((nll * weights).sum())
        count += int(weights.sum())
    return total / max(1, count)


@torch.no_grad()
def masked_accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                    batch: int = 16) -> float:
    """Fraction of masked positions predicted exactly (argmax, teacher-forced)."""
    hits, count, device = 0, 0, next(model.parameters()).device
    for i in range(0, len(inputs), batch):
        predicted = model(inputs[i:i + batch].to(device)).argmax(-1)
        m = mask[i:i + batch].to(device)
        hits += int(((predicted == targets[i:i + batch].to(device)) & m).sum())
        count += int(m.sum())
    return hits / max(1, count)
