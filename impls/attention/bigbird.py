"""BigBird attention (Zaheer et al. 2020): window, global and random key blocks.

The sequence (self-attention only, M == N) is cut into blocks of `block_size`;
nb = ceil(N / block_size). Query block a sees key block c iff
  |a - c| < window_blocks                        (masks.py's window rule, in blocks)
  or a < global_blocks or c < global_blocks      (global blocks, both ways)
  or c is one of a's random blocks,
and, when causal, additionally key j <= query i (blocks c > a are dropped).
The default window_blocks=2 is the paper's three-block window: a block, and
one block on each side.
Each non-global query block draws `num_random_blocks` distinct blocks it does
not already see (only c < a when causal), from a torch.Generator seeded with
`pattern_seed`, so the pattern is a function of (nb, params) alone. (Not named
`seed`: that is the workload's input seed, which must not move the pattern.)

Computed blocked: each non-global query block gathers its listed key blocks
into (B, H, nb, K*block_size, D) and attends with one batched matmul, so the
cost is O(N * K * block_size); the global query blocks attend densely.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from impls.attention import blocksparse, cost, masks
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

PARAMS = {"block_size": 64, "window_blocks": 2, "global_blocks": 1, "num_random_blocks": 2, "pattern_seed": 0}


@lru_cache(maxsize=32)
def random_blocks(n_blocks: int, window_blocks: int, global_blocks: int, num_random_blocks: int,
                  seed: int, causal: bool) -> tuple[tuple[int, ...], ...]:
    """For each query block, its random key blocks (empty for global query blocks)."""
    gen = torch.Generator().manual_seed(seed)
    reach = window_blocks - 1  # farthest block inside the window
    chosen = []
    for a in range(n_blocks):
        last = a if causal else n_blocks - 1
        candidates = [c for c in range(global_blocks, last + 1) if abs(a - c) > reach]
        if a < global_blocks or not candidates:
            chosen.append(())
            continue
        picks = torch.randperm(len(candidates), generator=gen)[:num_random_blocks]
        chosen.append(tuple(sorted(candidates[i] for i in picks.tolist())))
    return tuple(chosen)


def block_mask(n_blocks: int, block_size: int, window_blocks: int, global_blocks: int,
               num_random_blocks: int, seed: int, causal: bool) -> torch.Tensor:
    """(nb, nb) boolean: query block a sees key block c. `block_size` is unused here
    but kept so every pattern function takes the impl's params as they are."""
    if window_blocks < 1 or block_size < 1:
        raise ValueError(f"window_blocks and block_size must be >= 1, got {window_blocks}, {block_size}")
    idx = torch.arange(n_blocks)
    mask = masks.in_window(idx[:, None], idx[None, :], window=window_blocks, causal=False)
    mask |= (idx[:, None] < global_blocks) | (idx[None, :] < global_blocks)
    for a, picks in enumerate(random_blocks(n_blocks, window_blocks, global_blocks, num_random_blocks,
                                            seed, causal)):
        mask[a, list(picks)] = True
    return mask & (idx[:, None] >= idx[None, :]) if causal else mask


def bigbird_mask(n: int, causal: bool, block_size: int = 64, window_blocks: int = 2, global_blocks: int = 1,
                 num_random_blocks: int = 2, pattern_seed: int = 0) -> torch.Tensor:
    """(n, n) boolean element mask of the pattern (True = attend; causality added by the caller)."""
    n_blocks = -(-n // block_size)
    blocks = block_mask(n_blocks, block_size, window_blocks, global_blocks, num_random_blocks, pattern_seed,
                        causal)
    return blocks.repeat_interleave(block_size, 0).repeat_interleave(block_size, 1)[:n, :n]


@lru_cache(maxsize=32)
def key_block_lists(n_blocks: int, block_size: int, window_blocks: int, global_blocks: int,
                    num_random_blocks: int, seed: int, causal: bool) -> torch.Tensor:
    """(nb, K) key blocks each non-global query block sees, padded with -1; global rows all -1.
    Cached per pattern (callers must not modify it): building it is Python work per block."""
    blocks = block_mask(n_blocks, block_size, window_blocks, global_blocks, num_random_blocks, seed, causal)
    rows = [torch.nonzero(row).flatten() if a >= global_blocks else torch.empty(0, dtype=torch.long)
            for a, row in enumerate(blocks)]
    width = max([len(r) for r in rows] + [1])
    lists = torch.full((len(rows), width), -1, dtype=torch.long)
    for a, r in enumerate(rows):
        lists[a, :len(r)] = r
    return lists


@lru_cache(maxsize=8)
def _layout(n: int, block_size: int, window_blocks: int, global_blocks: int, num_random_blocks: int,
            seed: int, causal: bool, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(key-block lists, pair mask) of the gathered layout: listed blocks are attended, up to causality."""
    lists = key_block_lists(-(-n // block_size), block_size, window_blocks, global_blocks, num_random_blocks,
                            seed, causal)
    keep = (lambda i, j: j <= i) if causal else (lambda i, j: torch.ones_like(i == j))
    return lists.to(device), blocksparse.layout_mask(lists, keep, block_size, n, device)


@register("attention", "bigbird", exact=False, supports=blocksparse.self_attention_only, reference="bigbird_reference",
          params=PARAMS, **blocksparse.pattern_costs(lambda p: _work(p)))
def bigbird(q, k, v, *, causal: bool, scale: float | None = None, block_size: int = 64,
            window_blocks: int = 2, global_blocks: int = 1, num_random_blocks: int = 2,
            pattern_seed: int = 0) -> torch.Tensor:
    """Block-sparse window + global + random attention, O(N * K * block_size)."""
    blocksparse.require_self_attention("bigbird attention", q, k)
    k, v = masks.repeat_kv(k, q.shape[1]), masks.repeat_kv(v, q.shape[1])
    scale = default_scale(q, scale)
    n = q.shape[-2]
    lists, allowed = _layout(n, block_size, window_blocks, global_blocks, num_random_blocks, pattern_seed,
                             causal, str(q.device))
    out, _ = blocksparse.gathered_attention(q, k, v, lists, allowed, block_size, scale)
    g = min(global_blocks * block_size, n)
    if g:  # global query rows see every key
        allowed = (torch.arange(g, device=q.device)[:, None] >= torch.arange(n, device=q.device)[None, :]
                   if causal else torch.ones(g, n, dtype=torch.bool, device=q.device))
        rows, _ = blocksparse.masked_attention(q[:, :, :g], k, v, allowed, scale)
        out = torch.cat([rows, out[:, :, g:]], dim=2)
    return out.to(q.dtype)


def _work(p: dict) -> blocksparse.Work:
    """Every query block against its gathered key blocks (the global ones too, whose
    rows are then replaced), plus the dense global rows."""
    n = int(p["seq_len"])
    size = int(p.get("block_size", PARAMS["block_size"]))
    window, global_blocks, random, seed = (int(p.get(key, PARAMS[key])) for key in
                                           ("window_blocks", "global_blocks", "num_random_blocks", "pattern_seed"))
    n_blocks = -(-n // size)
    width = key_block_lists(n_blocks, size, window, global_blocks, random, seed, bool(p.get("causal"))).shape[1]
    return blocksparse.Work(pairs=n_blocks * size * width * size + min(global_blocks * size, n) * n,
                            key_rows=n_blocks * width * size)


@register("attention", "bigbird_reference", reference="bigbird_reference", supports=blocksparse.self_attention_only,
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.fp64_peak_bytes, params=PARAMS)
def bigbird_reference(q, k, v, *, causal: bool, scale: float | None = None, block_size: int = 64,
                      window_blocks: int = 2, global_blocks: int = 1, num_random_blocks: int = 2,
                      pattern_seed: int = 0) -> torch.Tensor:
    """BigBird as fp64 attention with an N x N mask (the spec of `bigbird`)."""
    blocksparse.require_self_attention("bigbird attention", q, k)
    keep = bigbird_mask(q.shape[-2], causal, block_size, window_blocks, global_blocks, num_random_blocks,
                        pattern_seed).to(q.device)
    return attention_fp64(q, k, v, causal=causal, scale=scale, keep=keep).to(q.dtype)
