"""Sliding-window (local) attention, computed band-blocked in O(N * window).

Pattern (self-attention only, M == N): the window rule of masks.py,
  causal:     query i sees key j iff 0 <= i - j < window   (itself and window-1 before)
  non-causal: query i sees key j iff |i - j| < window      (window-1 each side)
Queries are split into blocks no shorter than the window's reach; each block
attends to its own and neighbouring key blocks, gathered into one batched
matmul, with the pairs outside the window masked. Nothing is N x N.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from impls.attention import blocksparse, cost, masks
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

MIN_BLOCK = 16  # tiny windows still get blocks big enough for a useful matmul


def layout(window: int, causal: bool) -> tuple[int, list[int]]:
    """(block size, key-block offsets) such that the window fits in the listed blocks."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    reach = window - 1  # farthest key from its query, either side
    return max(reach, MIN_BLOCK), ([-1, 0] if causal else [-1, 0, 1])


@lru_cache(maxsize=8)
def window_layout(n: int, window: int, causal: bool, min_key: int,
                  device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(key_blocks, allowed) of the blocked window pattern over n positions, on `device`, cached."""
    block, offsets = layout(window, causal)
    n_blocks = -(-n // block)
    key_blocks = blocksparse.neighbour_blocks(n_blocks, n_blocks, offsets)

    def keep(i, j):
        return masks.in_window(i, j, window=window, causal=causal) & (j >= min_key)

    return key_blocks.to(device), blocksparse.layout_mask(key_blocks, keep, block, n, device)


def window_attention(q, k, v, *, window: int, causal: bool, scale: float,
                     min_key: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The window part as (out fp32 (B, H, N, D), lse (B, H, N)); keys j < min_key are left
    out (longformer counts them in its global part). k, v have as many heads as q."""
    key_blocks, allowed = window_layout(q.shape[-2], window, causal, min_key, str(q.device))
    return blocksparse.gathered_attention(q, k, v, key_blocks, allowed, layout(window, causal)[0], scale)


def window_work(n: int, window: int, causal: bool) -> blocksparse.Work:
    """What the blocked window computes per head: every query block against its listed
    key blocks (masked pairs included), which are gathered."""
    block, offsets = layout(window, causal)
    key_rows = -(-n // block) * len(offsets) * block
    return blocksparse.Work(pairs=key_rows * block, key_rows=key_rows)


def _case_work(p: dict) -> blocksparse.Work:
    return window_work(int(p["seq_len"]), int(p.get("window", 256)), bool(p.get("causal")))


@register("attention", "local", exact=False, supports=blocksparse.self_attention_only, reference="local_reference",
          params={"window": 256}, **blocksparse.pattern_costs(_case_work))
def local(q, k, v, *, causal: bool, scale: float | None = None, window: int = 256) -> torch.Tensor:
    """Sliding-window attention, blocked: O(N * window) time and memory."""
    blocksparse.require_self_attention("local attention", q, k)
    k, v = masks.repeat_kv(k, q.shape[1]), masks.repeat_kv(v, q.shape[1])
    scale = default_scale(q, scale)
    out, _ = window_attention(q, k, v, window=window, causal=causal, scale=scale)
    return out.to(q.dtype)


def local_mask(n: int, window: int, causal: bool, device=None) -> torch.Tensor:
    """(n, n) boolean mask of the window pattern (True = attend)."""
    return masks.window(n, n, window, causal, device)


# A masked reference is its own reference: run in a suite, it is checked against itself and
# its distance from exact attention is reported as exact_rel_err.
@register("attention", "local_reference", reference="local_reference", supports=blocksparse.self_attention_only,
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.fp64_peak_bytes, params={"window": 256})
def local_reference(q, k, v, *, causal: bool, scale: float | None = None, window: int = 256) -> torch.Tensor:
    """Sliding-window attention as fp64 attention with an N x N mask (the spec of `local`)."""
    blocksparse.require_self_attention("local attention", q, k)
    return attention_fp64(q, k, v, causal=causal, scale=scale,
                          keep=local_mask(q.shape[-2], window, causal, q.device)).to(q.dtype)
