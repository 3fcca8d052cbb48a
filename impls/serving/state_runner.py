"""Serving models whose state has a constant size (RNN, LSTM, GRU, Mamba, S4D).

Their per-sequence state does not depend on the length, so sequences at
different positions batch by stacking their states along the batch dimension,
and the LM contract's own `prefill`/`step` serve them unchanged. The store
keeps one state per sequence; memory held is exactly memory used (no waste),
which is the point of comparison with attention's KV cache.
Models with absolute positional encodings are refused: LMState carries one
position for the whole batch.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from impls.decoding.state_ops import rebuild_like
from impls.mixers.attention import Attention
from impls.mixers.state import state_bytes


class StateStore:
    """One constant-size state per sequence, at most `max_seqs` at once."""

    def __init__(self, max_seqs: int):
        self.max_seqs = max_seqs
        self.states: dict[int, Any] = {}
        self.lengths: dict[int, int] = {}

    def can_admit(self, n_tokens: int) -> bool:
        return len(self.states) < self.max_seqs

    def add(self, seq: int, n_tokens: int) -> None:
        self.states[seq], self.lengths[seq] = None, 0

    def release(self, seq: int) -> None:
        del self.states[seq], self.lengths[seq]

    def reserved_bytes(self) -> int:
        return sum(state_bytes(s) for s in self.states.values() if s is not None)

    used_bytes = reserved_bytes


class StateRunner:
    def __init__(self, model: Any):
        blocks = getattr(model, "blocks", None)
        if not blocks or any(isinstance(b.mixer, Attention) for b in blocks):
            raise ValueError("StateRunner serves LanguageModels of recurrent or SSM mixers only")
        if model.positional is not None:
            raise ValueError("StateRunner cannot serve absolute positions (one position per batch)")
        self.model = model

    @torch.no_grad()
    def prefill(self, store: StateStore, seq: int, prompt: torch.Tensor) -> torch.Tensor:
        """prompt (T,) -> logits (T, V); the sequence's state is kept in `store`."""
        device = next(self.model.parameters()).device
        state = self.model.init_state(1, len(prompt))
        logits, store.states[seq] = self.model.prefill(prompt[None].to(device), state)
        store.lengths[seq] = len(prompt)
        return logits[0]

    @torch.no_grad()
    def decode(self, store: StateStore, seqs: list[int], tokens: torch.Tensor) -> torch.Tensor:
        """tokens (S,) -> logits (S, V): all sequences' states stacked into one step."""
        device = next(self.model.parameters()).device
        state = stack_states([store.states[s] for s in seqs])
        logits, state = self.model.step(tokens.to(device), state)
        for s, row in zip(seqs, split_state(state, len(seqs))):
            store.states[s] = row
            store.lengths[s] += 1
        return logits


def stack_states(states: list[Any]) -> Any:
    """Batch-1 states -> one state with them as rows (tensor leaves concatenated on dim 0)."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states, 0)
    if isinstance(first, (list, tuple)):
        return rebuild_like(first, [stack_states(list(parts)) for parts in zip(*states)])
    if isinstance(first, dict):
        return {k: stack_states([s[k] for s in states]) for k in first}
    if dataclasses.is_dataclass(first):
        return dataclasses.replace(first, **{f.name: stack_states([getattr(s, f.name) for s in states])
                                             for f in dataclasses.fields(first) if f.init})
    return first  # ints, None: shared by every row


def split_state(state: Any, n: int) -> list[Any]:
    """The inverse of stack_states: n states of one row each."""
    if isinstance(state, torch.Tensor):
        return list(state.split(1, 0))
    if isinstance(state, (list, tuple)):
        parts = [split_state(s, n) for s in state]
        return [rebuild_like(state, [p[i] for p in parts]) for i in range(n)]
    if isinstance(state, dict):
        parts = {k: split_state(v, n) for k, v in state.items()}
        return [{k: p[i] for k, p in parts.items()} for i in range(n)]
    if dataclasses.is_dataclass(state):
        parts = {f.name: split_state(getattr(state, f.name), n) for f in dataclasses.fields(state) if f.init}
        return [dataclasses.replace(state, **{k: p[i] for k, p in parts.items()}) for i in range(n)]
    return [state] * n
