"""A batch of sequences being decoded by one model under one cache mode.

Strategies talk to a `Session`, never to the model's state directly, so every
strategy works with every cache mode and every architecture:

- "none": no cache; each call recomputes `model.forward` over the whole
  sequence so far (the baseline a KV cache is measured against).
- "grow" | "static" | "window": an attention model's KV cache kind, passed to
  `model.init_state(batch, max_len, cache=..., window=...)` when it takes those
  arguments; recurrent models take neither and keep their constant-size state.

With `compile=True` every `step` runs the model's step compiled
(impls/decoding/compiled.py), over a static cache.

Rolling back (speculative decoding) truncates a cache that can be truncated
and otherwise restores a snapshot taken before the speculative tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from impls.decoding import compiled, state_ops
from impls.decoding.layout import lay_out_for_decoding
from impls.models.lm import init_with_cache, taken_options
from impls.mixers.state import state_bytes

CACHE_MODES = ("none", "grow", "static", "window")


@dataclass
class Snapshot:
    length: int  # tokens processed when it was taken
    state: Any  # a deep copy of the state, or None when the state can be truncated instead


class Session:
    """Decoding state of `batch` sequences that advance together."""

    def __init__(self, model: Any, batch: int, max_len: int, cache: str = "grow",
                 window: int | None = None, compile: bool = False):
        if cache not in CACHE_MODES:
            raise ValueError(f"unknown cache mode '{cache}'; valid: {', '.join(CACHE_MODES)}")
        if compile and cache != "static":
            raise ValueError(f"compile=True needs cache='static' (a compiled step keeps every shape fixed), "
                             f"got cache='{cache}'")
        if batch == 1:  # a matrix-vector product per layer and token: its weight's layout decides its speed
            lay_out_for_decoding(model, compiled=compile)
        self.model, self.batch, self.max_len, self.cache = model, batch, max_len, cache
        self.length = 0  # tokens processed so far (same for every row)
        self.tokens: torch.Tensor | None = None  # (B, length), only kept when cache == "none"
        self.state = None if cache == "none" else init_with_cache(model.init_state, batch, max_len, cache, window)
        self.compile = compile
        self._bytes: tuple[tuple, int] | None = None  # (what the count depends on, cache_bytes)

    def prefill(self, tokens: torch.Tensor, last: int | None = None) -> torch.Tensor:
        """Process `tokens` (B, T) long after what came before; logits (B, T, V), or of the
        last `last` positions only (B, last, V), where the model can skip the others."""
        if tokens.shape[1] == 0:
            raise ValueError("prefill needs at least one token")
        self.length += tokens.shape[1]
        if self.cache == "none":
            self.tokens = tokens if self.tokens is None else torch.cat([self.tokens, tokens], 1)
            logits = self.model.forward(self.tokens)[:, -tokens.shape[1]:]
        elif last is None or "last" not in taken_options(self.model.prefill, {"last": last}):
            logits, self.state = self.model.prefill(tokens, self.state)
        else:
            logits, self.state = self.model.prefill(tokens, self.state, last=last)
        return logits if last is None else logits[:, -last:]

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Process one token per row, `token` (B,) long; logits (B, V)."""
        if self.cache == "none":
            return self.prefill(token[:, None])[:, 0]
        self.length += 1
        if not self.compile:
            logits, self.state = self.model.step(token, self.state)
            return logits
        if self.length > self.max_len:  # the compiled write does not check
            raise ValueError(f"the session holds {self.max_len} positions; step {self.length} overflows it")
        logits, self.state = compiled.compiled_step(self.model, token, self.state)
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
        """Bytes held by the decoding state (0 without a cache). A static cache keeps its size
        from its first update until the batch changes, so its count is reused meanwhile (walking
        the state costs about a tenth of a small model's decode step)."""
        if self.state is None:
            return 0
        depends_on = (self.batch, self.length > 0 if self.cache == "static" else self.length)
        if self._bytes is None or self._bytes[0] != depends_on:
            self._bytes = (depends_on, state_bytes(self.state))
        return self._bytes[1]
