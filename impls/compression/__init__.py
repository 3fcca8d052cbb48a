"""Compression of a trained float model: quantization, pruning, distillation.

Each method takes the trained float model (and, where it needs them, calibration
batches) and returns the compressed model, leaving the float one as it was. Every
quantized layer keeps `last_path`, the kernel its last call took, so a record names it
(`layer_paths`, with the linear layers left in float) and a fallback such as
"dequantize" is visible; `stored_bytes` is what the weights take.
"""
from __future__ import annotations

from collections import Counter

import torch
from torch import nn


def layer_paths(model: nn.Module) -> str:
    """'path:count+...' over the layers that name the kernel their last call took (a
    `last_path` attribute) and the plain nn.Linear layers left ('float_linear'); '' when
    the model has neither."""
    counts = Counter(m.last_path for m in model.modules() if getattr(m, "last_path", None))
    counts["float_linear"] = sum(type(m) is nn.Linear for m in model.modules())
    return "+".join(f"{path}:{n}" for path, n in sorted(counts.items()) if n)


def stored_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in the model's state dict, each storage counted once (a tied head
    and embedding are one matrix), including the int8 weights a quantized engine keeps packed
    (dynamic quantization's _packed_params). Caches a kernel builds from them (the int4
    layout) are not stored and not counted."""
    seen: set[int] = set()
    total = 0
    for tensor in _tensors(model.state_dict().values()):
        key = tensor.untyped_storage().data_ptr() if not tensor.is_quantized else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def _tensors(values) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(_tensors(value))
    return found
