"""Mixed precision: what fp16 (or bf16) autocast does to one step's gradients, with and
without loss scaling.

fp16 holds magnitudes from 2^-24 (subnormal) to 65504. Gradients of a mean loss
are small, and the activation gradients autocast keeps in fp16 flush to zero
below 2^-24 (underflow); scaled up too far they become inf (overflow). Loss
scaling (Micikevicius et al. 2018) multiplies the loss by S before backward and
the gradients by 1/S after, in fp32. Here torch.amp.GradScaler does it, with its
own policy: start at `init_scale`, and on an overflow skip the step and halve S.
The optimizer is SGD with lr 0, so the weights never move: one batch, measured
against fp32 gradients of the same weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from harness.quality.training import lm_loss

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MAX_BACKOFFS = 40  # halvings of the scale before giving up (2^16 -> 2^-24)


def mixed_precision(model: nn.Module, vocab_size: int, batch: int, seq_len: int, precision: str,
                    gen: torch.Generator, loss_weight: float = 1.0,
                    init_scale: float = 2.0 ** 16) -> dict[str, float]:
    """Metrics, for autocast at `precision` without scaling (`_unscaled`) and with
    GradScaler (`_scaled`): underflow_frac (gradient elements nonzero in fp32 and zero
    here), grad_rel_err (max |g - g_fp32| over max |g_fp32|; inf when a gradient is not
    finite), nonfinite (any inf or nan); and loss_scale (the scale the step ran at),
    overflow_backoffs (steps GradScaler skipped for an inf first), forward_nonfinite
    (the autocast loss itself not finite). `loss_weight` multiplies the loss, to place
    the gradients lower or higher in the range."""
    device = next(model.parameters()).device
    tokens = torch.randint(0, vocab_size, (batch, seq_len + 1), generator=gen).to(device)
    model.train()
    reference = _grads(model, lambda: _loss(model, tokens) * loss_weight)
    dtype = AUTOCAST_DTYPES[precision]

    def autocast_loss():
        with torch.autocast(device_type=device.type, dtype=dtype):
            return _loss(model, tokens) * loss_weight

    unscaled_loss = autocast_loss()
    metrics = {"forward_nonfinite": float(not math.isfinite(float(unscaled_loss.detach())))}
    metrics |= _compare(_grads(model, lambda: unscaled_loss), reference, "unscaled")
    grads, scale, backoffs = _scaled_grads(model, autocast_loss, device.type, init_scale)
    metrics |= _compare(grads, reference, "scaled")
    return metrics | {"loss_scale": scale, "overflow_backoffs": float(backoffs)}


def _loss(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    return lm_loss(model, (tokens[:, :-1], tokens[:, 1:], None), 0)


def _grads(model: nn.Module, loss_fn) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads


def _scaled_grads(model: nn.Module, loss_fn, device_type: str, init_scale: float):
    """GradScaler's step until one is not skipped: (unscaled gradients, scale, skipped steps)."""
    scaler = torch.amp.GradScaler(device_type, init_scale=init_scale)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    for backoffs in range(MAX_BACKOFFS + 1):
        scale = scaler.get_scale()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss_fn()).backward()
        scaler.step(optimizer)  # unscales the gradients in place; skips the step on inf or nan
        scaler.update()  # halves the scale after a skipped step
        if scaler.get_scale() >= scale:
            break
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads, float(scale), backoffs


def _compare(grads: list[torch.Tensor], reference: list[torch.Tensor], label: str) -> dict[str, float]:
    nonfinite = any(not bool(torch.isfinite(g).all()) for g in grads)
    lost = sum(int(((r != 0) & (g == 0)).sum()) for g, r in zip(grads, reference))
    nonzero = sum(int((r != 0).sum()) for r in reference)
    scale = max(float(r.abs().max()) for r in reference) or 1.0
    error = math.inf if nonfinite else max(float((g - r).abs().max()) for g, r in zip(grads, reference)) / scale
    return {f"underflow_frac_{label}": lost / max(1, nonzero), f"grad_rel_err_{label}": error,
            f"nonfinite_{label}": float(nonfinite)}
