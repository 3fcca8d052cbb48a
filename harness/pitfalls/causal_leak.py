"""Causal-mask leakage: does an output at position t depend on a token after t?

A decoder's output at t must be a function of tokens 0..t only. The check
changes the token at position p (to another random token) and compares every
output before p with the unperturbed run; any change there is a leak. The
outputs from p on must change, or the perturbation tested nothing (a model that
ignores its input cannot fail), which `perturbation_seen` records.
"""
from __future__ import annotations

import torch
from torch import nn

LEAK_TOLERANCE = 1e-6  # relative to max |logits|: fp32 rounding of computations that ignore the token


@torch.no_grad()
def causal_leak(model: nn.Module, vocab_size: int, batch: int, seq_len: int, gen: torch.Generator,
                positions: int = 4) -> dict[str, float]:
    """Perturb `positions` positions spread over the sequence, one at a time. Metrics:
    leak_rel (the largest change before a perturbed position over max |logits|),
    first_leak_position (the earliest output that moved, -1 if none), perturbation_seen
    (every perturbation changed some output at or after its position), causal_ok."""
    device = next(model.parameters()).device
    model.eval()
    tokens = torch.randint(0, vocab_size, (batch, seq_len), generator=gen).to(device)
    base = model(tokens).float()
    scale = float(base.abs().max()) or 1.0
    worst, first_leak, seen = 0.0, -1, True
    for p in _spread(seq_len, positions):
        shift = torch.randint(1, vocab_size, (batch,), generator=gen).to(device)
        changed = tokens.clone()
        changed[:, p] = (tokens[:, p] + shift) % vocab_size
        diff = (model(changed).float() - base).abs()  # (B, T, V)
        per_position = diff.amax(dim=(0, 2)) / scale  # (T,)
        seen = seen and bool(per_position[p:].max() > 0)
        if p:
            worst = max(worst, float(per_position[:p].max()))
            leaked = torch.nonzero(per_position[:p] > LEAK_TOLERANCE)
            if len(leaked):
                first_leak = int(leaked[0]) if first_leak < 0 else min(first_leak, int(leaked[0]))
    return {"leak_rel": worst, "first_leak_position": float(first_leak), "perturbation_seen": float(seen),
            "causal_ok": float(worst <= LEAK_TOLERANCE and seen)}


def _spread(seq_len: int, count: int) -> list[int]:
    """`count` positions from 1 to seq_len - 1, evenly spread (the last one included)."""
    if seq_len < 2:
        raise ValueError(f"a causal-leak check needs at least 2 positions, got seq_len={seq_len}")
    count = min(count, seq_len - 1)
    return sorted({1 + (seq_len - 2) * i // max(1, count - 1) for i in range(count)})
