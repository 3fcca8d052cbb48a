"""Plain masked-softmax attention with an additive bias.

The registered attention impls take no bias and only a bottom-right causal
mask, so two things the attention mixer needs go through this explicit path
instead: ALiBi (a per-head bias on the scores) and a sliding window over a
KV cache during a multi-token prefill (a banded mask). It is the textbook
formula, kept next to the impls it stands in for.
"""
from __future__ import annotations

import math

import torch

from impls.attention.masks import repeat_kv


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor,
                     bias: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + bias, masked to `keep`) v.

    q (B, Hq, N, D); k, v (B, Hkv, M, D); keep (N, M) bool, True = attend, at least
    one True per row; bias broadcastable to (B, Hq, N, M). Scores and softmax in
    fp32; returns (B, Hq, N, D) in v's dtype.
    """
    k, v = repeat_kv(k, q.shape[1]), repeat_kv(v, q.shape[1])
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale  # (B, H, N, M)
    if bias is not None:
        scores = scores + bias
    scores = scores.masked_fill(~keep, float("-inf"))
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v
