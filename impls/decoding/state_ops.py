"""Operations on a model's decoding state, whatever its shape.

A state is whatever `model.init_state` returns: a list of per-layer states,
each a tensor, a tuple of tensors (RNN/LSTM hidden state), or a cache object
(attention KV cache). These functions walk it recursively so that decoding
strategies never need to know which architecture they drive.

Batch is dimension 0 of every tensor leaf. An object that knows better (a KV
cache with a length pointer) may provide its own `reorder(indices)`, which wins
over the generic walk, and `truncate(length)`, which makes it truncatable. A
window cache has none: it has already evicted the old positions it would need
to show again.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch



def reorder_state(state: Any, indices: torch.Tensor) -> Any:
    """The state with batch rows picked by `indices` (long, (B',)): row i of the
    result is row indices[i] of `state`. Beam search uses it to follow each
    surviving beam's parent (beams are the batch)."""
    if hasattr(state, "reorder") and not isinstance(state, torch.Tensor):
        out = state.reorder(indices)
        return state if out is None else out  # in-place reorder returns None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, indices.to(state.device))
    if isinstance(state, (list, tuple)):
        return rebuild_like(state, [reorder_state(s, indices) for s in state])
    if isinstance(state, dict):
        return {k: reorder_state(v, indices) for k, v in state.items()}
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, **{f.name: reorder_state(getattr(state, f.name), indices)
                                             for f in dataclasses.fields(state) if f.init})
    if state is None or isinstance(state, (int, float, bool, str)):
        return state
    if hasattr(state, "__dict__"):  # a plain object (a KV cache): copy it, reorder its tensors
        out = copy.copy(state)
        for name, value in vars(state).items():
            setattr(out, name, reorder_state(value, indices))
        return out
    raise TypeError(f"cannot reorder a decoding state of type {type(state).__name__}")


def truncatable(state: Any) -> bool:
    """True when every part of `state` can be cut back to a length (KV caches can;
    a recurrent hidden state cannot: it keeps no memory of earlier lengths)."""
    if hasattr(state, "truncate") and not isinstance(state, torch.Tensor):
        return True
    if isinstance(state, (list, tuple)):
        return len(state) > 0 and all(truncatable(s) for s in state)
    return False


def truncate_state(state: Any, length: int) -> Any:
    """`state` rolled back to its first `length` tokens; requires `truncatable(state)`.
    Caches are cut in place."""
    if isinstance(state, (list, tuple)) and not hasattr(state, "truncate"):
        out = rebuild_like(state, [truncate_state(s, length) for s in state])
        if hasattr(out, "position"):  # LMState: the position absolute encodings start from
            position = out.position  # a tensor, kept one (a compiled step reads it as data)
            out.position = position.new_tensor(length) if isinstance(position, torch.Tensor) else length
        return out
    out = state.truncate(length)
    return state if out is None else out


def clone_state(state: Any) -> Any:
    """A deep copy that later in-place updates of `state` cannot change (a snapshot)."""
    return copy.deepcopy(state)


def rebuild_like(container: list | tuple, items: list) -> Any:
    """A container of `container`'s type holding `items`, keeping its attributes
    (LMState is a list that also carries `position`)."""
    if isinstance(container, tuple) and hasattr(container, "_fields"):
        return type(container)(*items)
    out = type(container)(items)
    if hasattr(container, "__dict__"):
        out.__dict__.update(vars(container))
    return out
