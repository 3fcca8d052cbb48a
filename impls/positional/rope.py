"""Rotary position embedding (Su et al. 2021, RoFormer).

Each pair of channels (x_i, x_{i+D/2}) of a query or key at position p is
rotated by angle p * base^(-2i/D). A rotation by p on q and by n on k leaves
q.k depending on p - n only, which is what makes it relative. Channels are
paired half-and-half (GPT-NeoX layout), not interleaved.
"""
from __future__ import annotations

import torch

from impls.registry import register


@register("positional", "rope", kind="rotary", doc="rotate q/k channel pairs by position")
def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x (..., T, D) with D even, positions (T,) -> rotated x, same shape and dtype (math in fp32)."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even head dim, got {d}")
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)  # (D/2,)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, D/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)
