"""Boolean masks (True = attend) shared by the attention impls and their references.

The sliding window, one rule for every windowed impl (local, longformer,
flex_window, bigbird in units of blocks, and their references): with
distance d = i' - j between key j and query i's aligned position
i' = i + M - N (i' = i for self-attention),

    non-causal:  |d| < window        (2 * window - 1 keys: itself and window - 1 each side)
    causal:      0 <= d < window     (window keys: itself and window - 1 before)

so a causal window is the non-causal one with the future dropped, as every
causal mask here is, and `window` is the number of keys a causal query sees
(Mistral's sliding window). Longformer's paper counts a width w of w / 2 keys
each side: that is window = w / 2 + 1 here.
"""
from __future__ import annotations

import torch


def causal(n: int, m: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, m) mask where query i sees key j iff j <= i + m - n (bottom-right aligned)."""
    if n > m:
        raise ValueError(f"causal attention needs kv_len >= seq_len, got seq_len={n}, kv_len={m}")
    rows = torch.arange(n, device=device)[:, None]
    cols = torch.arange(m, device=device)[None, :]
    return cols <= rows + (m - n)


def in_window(i: torch.Tensor, j: torch.Tensor, *, window: int, causal: bool) -> torch.Tensor:
    """True where aligned query position i sees key j under the window rule above
    (broadcastable index tensors; positions or block indices)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    distance = i - j
    inside = distance.abs() < window
    return inside & (distance >= 0) if causal else inside


def window(n: int, m: int, size: int, causal: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, m) mask of the sliding window of `size`, queries aligned bottom-right."""
    rows = torch.arange(n, device=device)[:, None] + (m - n)
    return in_window(rows, torch.arange(m, device=device)[None, :], window=size, causal=causal)


def repeat_kv(x: torch.Tensor, query_heads: int) -> torch.Tensor:
    """Expand (B, Hkv, M, D) to (B, Hq, M, D) so grouped heads share their K/V."""
    kv_heads = x.shape[1]
    if query_heads % kv_heads:
        raise ValueError(f"query heads ({query_heads}) must be a multiple of kv heads ({kv_heads})")
    return x if kv_heads == query_heads else x.repeat_interleave(query_heads // kv_heads, dim=1)
