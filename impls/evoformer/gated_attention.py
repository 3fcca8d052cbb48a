"""Gated multi-head self-attention with an optional bias on the logits.

The core that Algorithms 7, 8, 13 and 14 share (their lines 2 and 4-7): q, k, v
without bias, a sigmoid gate with bias, softmax(q k / sqrt(c) + b) v, the gate,
and an output projection. Rows of the leading axis attend independently, so
they may be chunked.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from impls.evoformer.chunking import chunk_apply


class GatedAttention(nn.Module):
    def __init__(self, channels: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(channels, 3 * heads * head_dim, bias=False)
        self.gate = nn.Linear(channels, heads * head_dim)
        self.out = nn.Linear(heads * head_dim, channels)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, chunk_size: int | None) -> torch.Tensor:
        """x (B, N, channels), already normalised; bias (H, N, N) shared by every row of B
        or None. Returns (B, N, channels); rows of B in chunks of `chunk_size`."""
        return chunk_apply(lambda rows: self._attend(rows, bias), [x], dim=0, chunk_size=chunk_size)

    def _attend(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        rows, n, _ = x.shape
        q, k, v = self.qkv(x).view(rows, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, N, c)
        mask = None if bias is None else bias.to(q.dtype)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, c)
        o = o.transpose(1, 2).reshape(rows, n, self.heads * self.head_dim)
        return self.out(torch.sigmoid(self.gate(x)) * o)
