"""Attention that reads keys and values through a block table, one block at a time.

Gathering every sequence's blocks into one (S, Hkv, n_keys, D) tensor before
attending would hold a contiguous copy of the whole cache for every layer and
step, which is the memory paging is meant to save. Instead the j-th block of
every sequence is gathered together ((S, Hkv, block, D): one index into the
pool) and folded into a running softmax, as FlashAttention folds key tiles:
per query row a running max m, a running sum l and an unnormalised output,
rescaled by exp(m_old - m_new) whenever the max grows. Memory beyond the output
is O(block), whatever the lengths. `gathered_attention` is the plain version it
must equal: gather everything, mask, softmax.

Shapes: q (S, H, T, D), the queries of S sequences (T per sequence), with
positions (S, T); pools (num_blocks, Hkv, block, D); tables (S, nb) block ids,
padded with any valid id (positions past a sequence's length are masked, since a
query attends to keys at positions <= its own).
"""
from __future__ import annotations

import math

import torch

from impls.mixers.masked_attention import masked_attention


def paged_attention(q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, tables: torch.Tensor,
                    positions: torch.Tensor) -> torch.Tensor:
    """Causal attention of q over the blocks listed in `tables`; (S, H, T, D) in v's dtype."""
    S, H, T, D = q.shape
    kv_heads, block = k_pool.shape[1], k_pool.shape[2]
    group = H // kv_heads  # query heads h of one KV head are consecutive (repeat_kv's layout)
    qg = q.float().reshape(S, kv_heads, group * T, D) / math.sqrt(D)  # (S, Hkv, G*T, D)
    q_pos = positions[:, None, None, :].expand(S, 1, group, T).reshape(S, 1, group * T, 1)
    m = torch.full((S, kv_heads, group * T, 1), float("-inf"), device=q.device)
    l = torch.zeros_like(m)
    acc = torch.zeros(S, kv_heads, group * T, D, device=q.device)
    offsets = torch.arange(block, device=q.device)
    for j in range(tables.shape[1]):
        ids = tables[:, j]
        k, v = k_pool[ids].float(), v_pool[ids].float()  # (S, Hkv, block, D)
        scores = (qg @ k.transpose(-1, -2)).masked_fill(j * block + offsets > q_pos, float("-inf"))
        m_new = torch.maximum(m, scores.amax(-1, keepdim=True))
        shift = m_new.masked_fill(m_new == float("-inf"), 0.0)  # rows with nothing to attend to yet
        p = torch.exp(scores - shift)
        rescale = torch.exp(m - shift)
        l = l * rescale + p.sum(-1, keepdim=True)
        acc = acc * rescale + p @ v
        m = m_new
    return (acc / l).reshape(S, H, T, D).to(v_pool.dtype)


def gathered_attention(q: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, tables: torch.Tensor,
                       positions: torch.Tensor) -> torch.Tensor:
    """The reference: every sequence's blocks gathered contiguously, then masked softmax."""
    k, v = (pool[tables].permute(0, 2, 1, 3, 4).flatten(2, 3) for pool in (k_pool, v_pool))  # (S, Hkv, nb*block, D)
    keep = torch.arange(k.shape[2], device=q.device)[None, None, None, :] <= positions[:, None, :, None]
    return masked_attention(q, k, v, keep=keep)
