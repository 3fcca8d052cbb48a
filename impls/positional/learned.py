"""Learned absolute positions (GPT-2): one trained vector per position."""
from __future__ import annotations

import torch
from torch import nn

from impls.registry import register


@register("positional", "learned", kind="absolute", doc="learned (max_len, d_model) table added to embeddings")
class Learned(nn.Module):
    """module(positions (T,)) -> (T, d_model) rows of a (max_len, d_model) parameter."""

    def __init__(self, d_model: int, max_len: int = 2048):
        super().__init__()
        self.max_len = max_len
        self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # GPT-2's init scale

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        # the check reads the positions back (a sync, and a graph break): a compiled decode
        # step skips it, so a compiled decode must keep within max_len itself
        if not torch.compiler.is_compiling() and positions.numel() and int(positions.max()) >= self.max_len:
            raise ValueError(f"position {int(positions.max())} is past max_len={self.max_len} "
                             "of the learned positional table")
        return self.table[positions]
