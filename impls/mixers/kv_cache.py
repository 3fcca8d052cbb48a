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

import copy

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

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on."""
        self.k, self.v, self.length = self.k[:, :, :length], self.v[:, :, :length], length


class StaticKVCache:
    """Preallocated (B, Hkv, max_len, D) buffers written in place (gpt-fast's KVCache): no
    reallocation, so its memory is the full buffer from the first update on. The buffers
    take the dtype of the first keys written (a model with int8 weights has no float
    weight to read the activations' dtype from).

    The fill length lives beside the buffers as a 0-d long tensor, `position`, so that
    a compiled decode step reads it as data and one graph (on a GPU, one CUDA graph)
    serves every position; eager code reads it as the int `length` (on a GPU, a sync).
    """

    window = None

    def __init__(self, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 device: torch.device | str) -> None:
        self.shape = (batch, kv_heads, max_len, head_dim)
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.max_len = max_len
        self.position = torch.zeros((), dtype=torch.long, device=device)

    @property
    def length(self) -> int:
        return int(self.position)

    def _allocate(self, like: torch.Tensor) -> None:
        if self.k is None:
            self.k = like.new_zeros(self.shape)
            self.v = like.new_zeros(self.shape)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        start = self.length
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"static KV cache holds {self.max_len} positions; "
                             f"writing {k.shape[2]} more after {start} overflows it")
        self._allocate(k)
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.position.fill_(end)
        return self.k[:, :, :end], self.v[:, :, :end], 0

    def update_one(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A compiled step's update, tensor operations only: one new position (k, v (B, Hkv, 1, D))
        written at `position`, which then advances. Returns the whole buffers and which of their
        positions the new query sees, keep (1, max_len) bool. The caller keeps within max_len."""
        self._allocate(k)
        index = self.position.view(1)
        self.k.index_copy_(2, index, k)
        self.v.index_copy_(2, index, v)
        keep = (torch.arange(self.max_len, device=self.k.device) <= self.position)[None, :]
        self.position += 1
        return self.k, self.v, keep

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on (the next update overwrites them)."""
        self.position.fill_(length)

    def reorder(self, indices: torch.Tensor) -> "StaticKVCache":
        """A cache of batch rows `indices` (B',) of this one, in that order."""
        out = copy.copy(self)
        out.shape = (len(indices), *self.shape[1:])
        if self.k is not None:
            out.k, out.v = self.k.index_select(0, indices), self.v.index_select(0, indices)
        out.position = self.position.clone()
        return out


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
