"""Operations on a model's decoding state, whatever its shape.

A state is whatever `model.init_state` returns: a list of per-layer states,
each a tensor, a tuple of tensors (RNN/LSTM hidden state), or a cache object
(attention KV cache). These functions walk it recursively so that decoding
strategies never need to know which architecture they drive.

Batch is dimension 0 of every tensor leaf. An object that knows better (a KV
cache with a length pointer) provides its own `reorder(indices)` and
`truncate(length)`; those methods win over the generic walk.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch


def reorder_state(state: Any, indices: torch.Tensor) -> Any:
    """The state with batch rows picked by `indices` (long, (B',)): row i of the
    result is row indices[i] of `state`. Used by beam search (beams are the batch)
    and by serving (sequences leave and join the batch)."""
    if hasattr(state, "reorder") and not isinstance(state, torch.Tensor):
        out = state.reorder(indices)
        return state if out is None else out  # in-place reorder returns None
    if isinstance(state, torch.Tensor):
        return state.index_select(0, indices.to(state.device))
    if isinstance(state, (list, tuple)):
        items = [reorder_state(s, indices) for s in state]
        return type(state)(*items) if _is_namedtuple(state) else type(state)(items)
    if isinstance(state, dict):
        return {k: reorder_state(v, indices) for k, v in state.items()}
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, **{f.name: reorder_state(getattr(state, f.name), indices)
                                             for f in dataclasses.fields(state) if f.init})
    if state is None or isinstance(state, (int, float, bool, str)):
        return state
    if hasattr(state, "__dict__"):  # a plain object: copy it, reorder its tensors
        out = copy.copy(state)
        for name, value in vars(state).items():
            setattr(out, name, reorder_state(value, indices))
        return out
    raise TypeError(f"cannot reorder a decoding state of type {type(state).__name__}")


def truncatable(state: Any) -> bool:
    """True when every part of `state` can be cut back to a length (KV caches do;
    a recurrent hidden state cannot, it has no memory of earlier lengths)."""
    if isinstance(state, (list, tuple)) and not hasattr(state, "truncate"):
        return len(state) > 0 and all(truncatable(s) for s in state)
    return hasattr(state, "truncate") and not isinstance(state, torch.Tensor)


def truncate_state(state: Any, length: int) -> Any:
    """`state` rolled back to its first `length` tokens; requires `truncatable(state)`."""
    if isinstance(state, (list, tuple)) and not hasattr(state, "truncate"):
        return type(state)(truncate_state(s, length) for s in state)
    out = state.truncate(length)
    return state if out is None else out


def clone_state(state: Any) -> Any:
    """A deep copy that later in-place updates of `state` cannot change (a snapshot)."""
    return copy.deepcopy(state)


def state_nbytes(state: Any) -> int:
    """Bytes of every tensor reachable from `state` (each storage counted once)."""
    seen: set[int] = set()
    total = 0
    for t in _tensors(state, set()):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def _tensors(obj: Any, visited: set[int]):
    if id(obj) in visited:
        return
    visited.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o, visited)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o, visited)
    elif hasattr(obj, "__dict__"):
        for o in vars(obj).values():
            yield from _tensors(o, visited)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")
