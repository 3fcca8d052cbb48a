"""Plain masked-softmax attention with an additive bias.

The registered attention impls take only a bottom-right causal mask, so rows
the attention mixer needs with another mask go through this explicit path: a
sparse pattern's rows for cached queries (pattern_rows.py), a sliding window
over a KV cache during a multi-token prefill (a banded mask), and ALiBi's bias
for `naive` and `reference` (score_bias.py). It is the textbook formula, kept
next to the impls it stands in for.
"""
from __future__ import annotations


import torch

from impls.attention.masks import repeat_kv
from impls.attention.scale import default_scale


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor,
                     bias: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale + bias, masked to `keep`) v.

    q (B, Hq, N, D); k, v (B, Hkv, M, D); keep (N, M) bool, True = attend, at least
    one True per row; bias broadcastable to (B, Hq, N, M). Scores and softmax in
    fp32 (fp64 for fp64 inputs); returns (B, Hq, N, D) in v's dtype.
    """
    k, v = repeat_kv(k, q.shape[1]), repeat_kv(v, q.shape[1])
    dtype = torch.promote_types(q.dtype, torch.float32)
    scale = default_scale(q, scale)
    scores = (q.to(dtype) @ k.to(dtype).transpose(-1, -2)) * scale  # (B, H, N, M)
    if bias is not None:
        scores = scores + bias.to(dtype)
    scores = scores.masked_fill(~keep, float("-inf"))
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v
