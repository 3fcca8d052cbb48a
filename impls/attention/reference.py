"""Exact attention in float64: the specification every exact impl must equal."""
from __future__ import annotations


import torch

from impls.attention import cost, masks
from impls.registry import register
from impls.attention.scale import default_scale


def attention_fp64(q, k, v, *, causal: bool, scale: float | None = None, keep=None) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v in float64, returned in float64.

    `keep` is an optional (N, M) or broadcastable boolean mask (True = attend),
    used by approximate variants to state exactly which pairs they compute.
    Rows that attend to nothing are zero.
    """
    q64, k64, v64 = q.double(), k.double(), v.double()
    k64, v64 = masks.repeat_kv(k64, q.shape[1]), masks.repeat_kv(v64, q.shape[1])
    scale = default_scale(q, scale)
    scores = q64 @ k64.transpose(-1, -2) * scale  # (B, H, N, M)
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device)
    if causal:
        allowed = allowed & masks.causal(q.shape[-2], k.shape[-2], q.device)
    if keep is not None:
        allowed = allowed & keep
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # empty rows -> 0
    return probs @ v64


@register("attention", "reference", precisions=("fp32", "fp16", "bf16"),
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.fp64_peak_bytes)
def reference(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """Exact attention computed in float64 (slow; the yardstick)."""
    return attention_fp64(q, k, v, causal=causal, scale=scale).to(q.dtype)
