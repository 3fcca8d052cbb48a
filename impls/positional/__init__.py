"""Positional information, registered as family "positional", three kinds (`Impl.kind`):

- "absolute" (sinusoidal, learned): nn.Module class `cls(d_model, max_len)`;
  `module(positions (T,) long) -> (T, d_model)`, added to the token embeddings.
- "rotary" (rope): `apply_rope(x (..., T, D), positions (T,), base) -> x rotated`,
  applied to queries and keys before attention.
- "bias" (alibi): `bias(heads, positions_q (N,), positions_k (M,)) -> (heads, N, M)`,
  added to attention scores.

`get(name)` returns the registered class or function.
"""
from __future__ import annotations

from typing import Any

ABSOLUTE = ("sinusoidal", "learned")  # added to the token embeddings (or a block's input)
RELATIVE = ("rope", "alibi")  # applied inside attention: rotated queries and keys, or a score bias
POSITIONALS = ABSOLUTE + RELATIVE + ("none",)


def get(name: str) -> Any:
    """The registered positional class/function called `name` (UnknownImpl lists valid names)."""
    from impls import registry

    return registry.get("positional", name).fn
