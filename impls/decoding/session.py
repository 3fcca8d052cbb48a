"""A batch of sequences being decoded by one model under one cache mode.

Strategies talk to a `Session`, never to the model's state directly, so every
strategy works with every cache mode and every architecture:

- "none": no cache; each call recomputes `model.forward` over the whole
  sequence so far (the baseline a KV cache is measured against).
- "grow" | "static" | "window": an attention model's KV cache kind, passed to
  `model.init_state(batch, max_len, cache=..., window=...)` when it takes those
  arguments; recurrent models take neither and keep their constant-size state.

Rolling back (speculative decoding) truncates a cache that can be truncated
and otherwise restores a snapshot taken before the speculative tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from impls.decoding import state_ops
from impls.models.lm import taken_options
from impls.mixers.state import state_bytes

CACHE_MODES = ("none", "grow", "static", "window")


@dataclass
class Snapshot:
    length: int  # tokens processed when it was taken
    state: Any  # a deep copy of the state, or None when the state can be truncated instead


class Session:
    """Decoding state of `batch` sequences that advance together."""

    def __init__(self, model: Any, batch: int, max_len: int, cache: str = "grow",
                 window: int | None = None):
        if cache not in CACHE_MODES:
            raise ValueError(f"unknown cache mode '{cache}'; valid: {', '.join(CACHE_MODES)}")
        self.model, self.batch, self.max_len, self.cache = model, batch, max_len, cache
        self.length = 0  # tokens processed so far (same for every row)
        self.tokens: torch.Tensor | None = None  # (B, length), only kept when cache == "none"
        self.state = None if cache == "none" else init_state(model, batch, max_len, cache, window)

    def prefill(self, tokens: torch.Tensor) -> torch.Tensor:
        """Process `tokens` (B, T) long after what came before; logits (B, T, V)."""
        if tokens.shape[1] == 0:
            raise ValueError("prefill needs at least one token")
        self.length += tokens.shape[1]
        if self.cache == "none":
            self.tokens = tokens if self.tokens is None else torch.cat([self.tokens, tokens], 1)
            return self.model.forward(self.tokens)[:, -tokens.shape[1]:]
        logits, self.state = self.model.prefill(tokens, self.state)
        return logits

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Process one token per row, `token` (B,) long; logits (B, V)."""
        if self.cache == "none":
            return self.prefill(token[:, None])[:, 0]
        self.length += 1
        logits, self.state = self.model.step(token, self.state)
        return logits

    def reorder(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (B',) of the batch, in that order (beam search)."""
        if self.cache == "none":
            self.tokens = self.tokens.index_select(0, indices)
        else:
            self.state = state_ops.reorder_state(self.state, indices)
        self.batch = int(indices.numel())

    def snapshot(self) -> Snapshot:
        """A point to roll back to; cheap when the state can be truncated."""
        keep = self.cache != "none" and not state_ops.truncatable(self.state)
        return Snapshot(self.length, state_ops.clone_state(self.state) if keep else None)

    def rollback(self, snapshot: Snapshot, replay: torch.Tensor | None = None) -> None:
        """Return to `snapshot`, then process `replay` (B, T) tokens if given.

        A truncatable cache is cut to length + T directly (the tokens are already
        in it); a recurrent state is restored and `replay` recomputed from it.
        """
        n_replay = 0 if replay is None else replay.shape[1]
        target = snapshot.length + n_replay
        if target > self.length:
            raise ValueError(f"cannot roll forward: at {self.length} tokens, asked for {target}")
        if self.cache == "none":
            self.tokens, self.length = self.tokens[:, :target], target
        elif snapshot.state is None:
            self.state, self.length = state_ops.truncate_state(self.state, target), target
        else:
            self.state, self.length = state_ops.clone_state(snapshot.state), snapshot.length
            if n_replay:
                self.prefill(replay)

    def cache_bytes(self) -> int:
        """Bytes held by the decoding state (0 without a cache)."""
        return 0 if self.state is None else state_bytes(self.state)


def init_state(model: Any, batch: int, max_len: int, cache: str, window: int | None) -> Any:
    """`model.init_state` with the cache kind (and window) where the model takes one;
    a recurrent model takes neither and keeps its constant-size state."""
    kv = {"cache": cache} | ({"window": window} if window is not None else {})
    return model.init_state(batch, max_len, **taken_options(model.init_state, kv))
