"""KV caches for the attention mixer: small objects in the style of gpt-fast.

Each cache holds the keys and values of a contiguous run of absolute positions
and is updated in place: `update(k_new, v_new) -> (k, v, key_start)` appends
T new positions (k_new, v_new: (B, Hkv, T, D)) and returns every key/value the
new queries may attend to, (B, Hkv, M, D), whose first position is `key_start`.
The last returned key is always the newest token, so the new queries line up
with the attention interface's bottom-right causal mask.
`length` is the number of tokens seen so far: the position of the next token.
"""
from __future__ import annotations

import torch


class GrowingKVCache:
    """Concatenates: memory grows with every token (simple, reallocates each step)."""

    window = None

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        self.k = k if self.k is None else torch.cat((self.k, k), dim=2)
        self.v = v if self.v is None else torch.cat((self.v, v), dim=2)
        self.length += k.shape[2]
        return self.k, self.v, 0


class StaticKVCache:
    """Preallocated (B, Hkv, max_len, D) buffers plus a fill length; no reallocation,
    so its memory is the full buffer from the start (what a compiled decoder wants)."""

    window = None

    def __init__(self, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 device: torch.device | str, dtype: torch.dtype) -> None:
        shape = (batch, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        start, end = self.length, self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"static KV cache holds {self.max_len} positions; "
                             f"writing {k.shape[2]} more after {start} overflows it")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end], 0


class WindowKVCache:
    """Bounded: keeps only the last `window` positions (sliding-window attention,
    the chat scenario). A query at position p then sees keys p - window .. p
    (the window past tokens and itself); once more than window + 1 tokens have
    been seen the model differs from full attention, by design."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        kept = 0 if self.k is None else self.k.shape[2]
        key_start = self.length - kept
        k_all = k if self.k is None else torch.cat((self.k, k), dim=2)
        v_all = v if self.v is None else torch.cat((self.v, v), dim=2)
        # clone so the stored window does not pin the whole concatenation in memory
        self.k, self.v = k_all[:, :, -self.window:].clone(), v_all[:, :, -self.window:].clone()
        self.length += k.shape[2]
        return k_all, v_all, key_start
