"""Size of a mixer's state in bytes, whatever its shape (tensor, tuple, cache object)."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch


def state_bytes(state: Any) -> int:
    """Bytes held by every tensor reachable from `state`.

    Walks dicts, lists, tuples, dataclasses and plain objects (their __dict__),
    counting each tensor once (a tensor reachable twice is one allocation).
    For a preallocated cache this is the whole buffer, not just the filled part.
    """
    seen_tensors: set[int] = set()
    seen_objects: set[int] = set()

    def walk(obj: Any) -> int:
        if isinstance(obj, torch.Tensor):
            if id(obj) in seen_tensors:
                return 0
            seen_tensors.add(id(obj))
            return obj.numel() * obj.element_size()
        if obj is None or isinstance(obj, (int, float, str, bool, torch.dtype, torch.device)):
            return 0
        if id(obj) in seen_objects:  # guards against cycles
            return 0
        seen_objects.add(id(obj))
        if isinstance(obj, dict):
            return sum(walk(v) for v in obj.values())
        if isinstance(obj, (list, tuple, set)):
            return sum(walk(v) for v in obj)
        if dataclasses.is_dataclass(obj):
            return sum(walk(getattr(obj, f.name)) for f in dataclasses.fields(obj))
        if hasattr(obj, "__dict__"):
            return sum(walk(v) for v in vars(obj).values())
        return 0

    return walk(state)
