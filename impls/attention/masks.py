"""Boolean masks (True = attend) shared by the attention references."""
from __future__ import annotations

import torch


def causal(n: int, m: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n, m) mask where query i sees key j iff j <= i + m - n (bottom-right aligned)."""
    if n > m:
        raise ValueError(f"causal attention needs kv_len >= seq_len, got seq_len={n}, kv_len={m}")
    rows = torch.arange(n, device=device)[:, None]
    cols = torch.arange(m, device=device)[None, :]
    return cols <= rows + (m - n)


def repeat_kv(x: torch.Tensor, query_heads: int) -> torch.Tensor:
    """Expand (B, Hkv, M, D) to (B, Hq, M, D) so grouped heads share their K/V."""
    kv_heads = x.shape[1]
    if query_heads % kv_heads:
        raise ValueError(f"query heads ({query_heads}) must be a multiple of kv heads ({kv_heads})")
    return x if kv_heads == query_heads else x.repeat_interleave(query_heads // kv_heads, dim=1)
