"""Strided sparse attention (Child et al. 2019, "Sparse Transformers"), causal only.

With stride l, query i sees key j <= i iff
  i - j < l              (local: the l most recent positions, itself included)
  or (i - j) % l == 0    (strided: every l-th position back).
The paper writes the local set as {max(0, i - l), ..., i}; position i - l is
also strided, so the two definitions give the same set. Self-attention only.

Computed as two disjoint parts merged into one softmax per row: the local part
0 <= i - j < l is local attention's causal band (blocked, O(N * l)); the
strided part i - j = t * l, t >= 1, groups positions by residue r = i mod l so
each residue class is a small causal attention of ceil(N / l) positions
(O(N^2 / l)). With l ~ sqrt(N) the whole costs O(N * sqrt(N)).
"""
from __future__ import annotations

import torch

from impls.attention import blocksparse, cost, masks
from impls.attention.local import window_attention, window_work
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

PARAMS = {"stride": 128}


def strided_keep(i: torch.Tensor, j: torch.Tensor, *, stride: int) -> torch.Tensor:
    """True where query i may see key j (causal)."""
    back = i - j
    return (back >= 0) & ((back < stride) | (back % stride == 0))


def _require_causal(causal: bool, stride: int) -> None:
    if not causal:
        raise ValueError("sparse_strided is causal only (Child et al. define it for autoregressive "
                         "models); run it with causal=true")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")


def strided_part(q, k, v, *, stride: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys j = i - t*stride, t >= 1, as (out fp32 (B, H, N, D), lse (B, H, N))."""
    batch, heads, n, dim = q.shape
    rows = -(-n // stride)  # positions per residue class

    def by_residue(x):  # (B, H, N, D) -> (B, H, stride, rows, D); row t of residue r is t*stride + r
        return blocksparse.pad_seq(x, rows * stride).view(batch, heads, rows, stride, dim).transpose(2, 3)

    t = torch.arange(rows, device=q.device)
    # key u is strictly earlier than query t; padded keys sit after every real query, so never seen
    out, lse = blocksparse.masked_attention(by_residue(q), by_residue(k), by_residue(v),
                                            t[None, :] < t[:, None], scale)
    out = out.transpose(2, 3).reshape(batch, heads, rows * stride, dim)[:, :, :n]
    return out, lse.transpose(2, 3).reshape(batch, heads, rows * stride)[:, :, :n]


def _causal_self_attention(p: dict) -> str | None:
    if not p.get("causal"):
        return "sparse_strided is defined for causal attention only"
    return blocksparse.self_attention_only(p)


@register("attention", "sparse_strided", exact=False, supports=_causal_self_attention, reference="sparse_strided_reference",
          params=PARAMS, **blocksparse.pattern_costs(lambda p: _work(p)))
def sparse_strided(q, k, v, *, causal: bool, scale: float | None = None, stride: int = 128) -> torch.Tensor:
    """Local + strided causal attention, O(N * (stride + N / stride))."""
    _require_causal(causal, stride)
    blocksparse.require_self_attention("sparse_strided attention", q, k)
    k, v = masks.repeat_kv(k, q.shape[1]), masks.repeat_kv(v, q.shape[1])
    scale = default_scale(q, scale)
    local = window_attention(q, k, v, window=stride, causal=True, scale=scale)
    return blocksparse.merge([local, strided_part(q, k, v, stride=stride, scale=scale)]).to(q.dtype)


def _work(p: dict) -> blocksparse.Work:
    """The causal band of `stride` (blocked, gathered) merged with the strided part: per
    residue class a ceil(N / stride)-square attention over K and V regrouped (copied)."""
    n, stride = int(p["seq_len"]), int(p.get("stride", PARAMS["stride"]))
    rows = -(-n // stride)
    band = window_work(n, stride, True)
    return blocksparse.Work(pairs=band.pairs + stride * rows * rows, key_rows=band.key_rows + stride * rows,
                            parts=2, largest_part=max(band.pairs, stride * rows * rows))


def sparse_strided_mask(n: int, stride: int, device=None) -> torch.Tensor:
    """(n, n) boolean mask of the pattern (True = attend)."""
    idx = torch.arange(n, device=device)
    return strided_keep(idx[:, None], idx[None, :], stride=stride)


@register("attention", "sparse_strided_reference", reference="sparse_strided_reference",
          supports=_causal_self_attention, flops=cost.flops, bytes_moved=cost.bytes_moved,
          peak_bytes=cost.fp64_peak_bytes, params=PARAMS)
def sparse_strided_reference(q, k, v, *, causal: bool, scale: float | None = None,
                             stride: int = 128) -> torch.Tensor:
    """Strided sparse attention as fp64 attention with an N x N mask (the spec)."""
    _require_causal(causal, stride)
    blocksparse.require_self_attention("sparse_strided attention", q, k)
    keep = sparse_strided_mask(q.shape[-2], stride, q.device)
    return attention_fp64(q, k, v, causal=causal, scale=scale, keep=keep).to(q.dtype)
