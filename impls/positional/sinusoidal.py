"""Fixed sinusoidal absolute positions (Vaswani et al. 2017, section 3.5)."""
from __future__ import annotations

import torch
from torch import nn

from impls.registry import register


def sinusoidal_table(positions: torch.Tensor, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """positions (T,) -> (T, d_model) float32 with
    pe[p, 2i] = sin(p / base^(2i/d)), pe[p, 2i+1] = cos(p / base^(2i/d))."""
    if d_model % 2:
        raise ValueError(f"sinusoidal positions need an even d_model, got {d_model}")
    inv_freq = base ** (-torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32) / d_model)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, d/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # interleave sin, cos


@register("positional", "sinusoidal", kind="absolute", doc="fixed sin/cos table added to embeddings")
class Sinusoidal(nn.Module):
    """module(positions (T,)) -> (T, d_model); no parameters, works past max_len too."""

    def __init__(self, d_model: int, max_len: int = 2048):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return sinusoidal_table(positions, self.d_model)
