"""Gradient accumulation: k micro-batches of B/k rows against one batch of B rows.

With a loss that is a mean over equally sized rows, the sum of each micro-batch's
loss divided by k has the same gradient as the whole batch's loss, up to the
order of floating-point sums. Anything computed across the batch breaks that:
a load-balancing loss over the batch's routing (MoE), capacity limits that drop
tokens depending on the rest of the batch, batch statistics. The check runs both
in fp32 from the same weights and reports the distance.
"""
from __future__ import annotations

import torch
from torch import nn

from harness.quality.training import lm_loss

EQUIVALENCE_TOLERANCE = 1e-5  # relative: fp32 sums taken in another order


def grad_accumulation(model: nn.Module, vocab_size: int, batch: int, seq_len: int, micro_batches: int,
                      gen: torch.Generator) -> dict[str, float]:
    """Metrics: grad_rel_err (max |accumulated - whole| over max |whole|, over every
    parameter), loss_rel_err (the mean of the micro-batch losses against the whole
    batch's), accumulation_equivalent (grad_rel_err within EQUIVALENCE_TOLERANCE)."""
    if batch % micro_batches:
        raise ValueError(f"micro_batches={micro_batches} must divide batch={batch}")
    device = next(model.parameters()).device
    tokens = torch.randint(0, vocab_size, (batch, seq_len + 1), generator=gen).to(device)
    model.train()
    whole_loss = _backward(model, tokens, 1.0)
    whole = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    micro_loss = sum(_backward(model, rows, 1.0 / micro_batches) for rows in tokens.chunk(micro_batches))
    accumulated = [p.grad for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    error = max(float((a - w).abs().max()) for a, w in zip(accumulated, whole))
    scale = max(float(w.abs().max()) for w in whole) or 1.0
    return {"grad_rel_err": error / scale, "loss_rel_err": abs(micro_loss - whole_loss) / abs(whole_loss),
            "micro_batches": float(micro_batches),
            "accumulation_equivalent": float(error / scale <= EQUIVALENCE_TOLERANCE)}


def _backward(model: nn.Module, tokens: torch.Tensor, weight: float) -> float:
    """Backward of weight x (next-token loss + the model's auxiliary loss); the loss x weight."""
    loss = lm_loss(model, (tokens[:, :-1], tokens[:, 1:], None), 0) * weight
    loss.backward()
    return float(loss.detach())
