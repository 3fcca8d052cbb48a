"""Standard attention: materialises the full (N, M) score matrix."""
from __future__ import annotations


import torch

from impls.attention import cost, masks
from impls.registry import register
from impls.attention.scale import default_scale


@register("attention", "naive", flops=cost.flops, bytes_moved=cost.bytes_moved,
          peak_bytes=cost.naive_peak_bytes)
def naive(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """softmax(QK^T)V with the (B, H, N, M) scores in memory; softmax in fp32."""
    k, v = masks.repeat_kv(k, q.shape[1]), masks.repeat_kv(v, q.shape[1])
    scale = default_scale(q, scale)
    scores = (q @ k.transpose(-1, -2)).float() * scale  # (B, H, N, M)
    if causal:
        scores = scores.masked_fill(~masks.causal(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v
