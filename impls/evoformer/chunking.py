"""Run a function over slices of independent rows and join the results.

AlphaFold bounds the memory of inference by applying a layer to sub-batches of
an axis along which its outputs do not interact (Supplementary Information
1.11.8; `subbatch_size` in its code): the largest intermediate then scales with
the chunk, not the whole axis. The result is the same as one call on all rows.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def chunk_apply(fn: Callable[..., torch.Tensor], sliced: Sequence[torch.Tensor], dim: int | Sequence[int],
                chunk_size: int | None, out_dim: int = 0) -> torch.Tensor:
    """fn(*sliced) computed over slices of `chunk_size` rows along `dim` of the tensors in
    `sliced` (one dim for all, or one each), joined along `out_dim`. None, or a chunk
    covering the axis, is one call."""
    dims = [dim] * len(sliced) if isinstance(dim, int) else list(dim)
    length = sliced[0].shape[dims[0]]
    if chunk_size is None or chunk_size >= length:
        return fn(*sliced)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    parts = [fn(*(t.narrow(d, start, min(chunk_size, length - start)) for t, d in zip(sliced, dims)))
             for start in range(0, length, chunk_size)]
    return torch.cat(parts, dim=out_dim)
