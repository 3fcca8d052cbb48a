"""Longformer attention (Beltagy et al. 2020): a sliding window plus global tokens.

Pattern (self-attention only, M == N), with g = global_tokens:
  query i sees key j iff  window(i, j)  or  i < g  or  j < g,
and additionally j <= i when causal. `window(i, j)` is the window rule of
masks.py, as in `local` (causal: 0 <= i - j < window; non-causal: |i - j| < window).

Computed in O(N * (window + g)): the window part over keys j >= g is blocked as
in `local`; the global columns (keys j < g) are a dense N x g part; the two are
merged into one softmax per row through their log-sum-exps. The g global rows
attend to every key densely (g x N) and replace those rows.
"""
from __future__ import annotations

import torch

from impls.attention import blocksparse, cost, masks
from impls.attention.local import local_mask, window_attention, window_work
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

PARAMS = {"window": 256, "global_tokens": 16}


def longformer_mask(n: int, window: int, global_tokens: int, causal: bool, device=None) -> torch.Tensor:
    """(n, n) boolean mask of the pattern (True = attend); causality is added by the caller."""
    idx = torch.arange(n, device=device)
    is_global = idx < global_tokens
    return local_mask(n, window, causal, device) | is_global[:, None] | is_global[None, :]


def _causal_or_all(rows: int, cols: int, causal: bool, device) -> torch.Tensor:
    """(rows, cols) mask of queries 0..rows-1 and keys 0..cols-1 (M == N, so j <= i)."""
    if not causal:
        return torch.ones(rows, cols, dtype=torch.bool, device=device)
    return torch.arange(rows, device=device)[:, None] >= torch.arange(cols, device=device)[None, :]


@register("attention", "longformer", exact=False, supports=blocksparse.self_attention_only, reference="longformer_reference",
          params=PARAMS, **blocksparse.pattern_costs(lambda p: _work(p)))
def longformer(q, k, v, *, causal: bool, scale: float | None = None, window: int = 256,
               global_tokens: int = 16) -> torch.Tensor:
    """Window + global-token attention in O(N * (window + global_tokens))."""
    blocksparse.require_self_attention("longformer attention", q, k)
    k, v = masks.repeat_kv(k, q.shape[1]), masks.repeat_kv(v, q.shape[1])
    scale = default_scale(q, scale)
    n, g = q.shape[-2], min(global_tokens, q.shape[-2])
    band = window_attention(q, k, v, window=window, causal=causal, scale=scale, min_key=g)
    if g == 0:
        return band[0].to(q.dtype)
    # keys j < g for every row: (N, g) dense
    columns = blocksparse.masked_attention(q, k[:, :, :g], v[:, :, :g],
                                           _causal_or_all(n, g, causal, q.device), scale)
    out = blocksparse.merge([band, columns])
    # rows i < g see every key: (g, N) dense
    rows, _ = blocksparse.masked_attention(q[:, :, :g], k, v, _causal_or_all(g, n, causal, q.device), scale)
    return torch.cat([rows, out[:, :, g:]], dim=2).to(q.dtype)


def _work(p: dict) -> blocksparse.Work:
    """The blocked band (gathered), the N x g global columns and the g x N global rows
    (slices, not copies): three parts, the band the largest."""
    n = int(p["seq_len"])
    g = min(int(p.get("global_tokens", PARAMS["global_tokens"])), n)
    band = window_work(n, int(p.get("window", PARAMS["window"])), bool(p.get("causal")))
    return blocksparse.Work(pairs=band.pairs + 2 * n * g, key_rows=band.key_rows, parts=3 if g else 1,
                            largest_part=band.pairs)


@register("attention", "longformer_reference", reference="longformer_reference",
          supports=blocksparse.self_attention_only, flops=cost.flops, bytes_moved=cost.bytes_moved,
          peak_bytes=cost.fp64_peak_bytes, params=PARAMS)
def longformer_reference(q, k, v, *, causal: bool, scale: float | None = None, window: int = 256,
                         global_tokens: int = 16) -> torch.Tensor:
    """Longformer as fp64 attention with an N x N mask (the spec of `longformer`)."""
    blocksparse.require_self_attention("longformer attention", q, k)
    keep = longformer_mask(q.shape[-2], window, global_tokens, causal, q.device)
    return attention_fp64(q, k, v, causal=causal, scale=scale, keep=keep).to(q.dtype)
