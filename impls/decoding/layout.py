"""Where a linear layer's weight lies in memory when a batch-1 decode step reads it.

A decode step at batch 1 multiplies one row by each weight: a matrix-vector product,
bound by how fast the weight is read. torch's CPU GEMV reads an nn.Linear weight
(out, in) stored row by row more slowly than the same weight stored column by column,
that is as (in, out) rows, the layout of GPT-2's Conv1D: at GPT-2 124M shapes, one
thread, the step read 8.7 GB/s row-major against 16.5 GB/s column-major (fastest of
five calls each, in alternation; scripts/decode_vs_transformers.py). The compiled step
wants rows again: it generates each one-row product as a reduction along contiguous
memory (impls/decoding/compiled.py).

Only the memory layout changes, in place: the values, the parameters' identity (a
tied head stays tied) and every result are the same.
"""
from __future__ import annotations

from typing import Any

import torch

RELAID = (torch.float32, torch.float64)  # where the column-major GEMV was measured faster


def lay_out_for_decoding(model: Any, compiled: bool) -> None:
    """The CPU linear weights of `model` column-major for an eager decode, row-major for a
    compiled one; a no-op on a GPU, for other dtypes and once laid out."""
    if not isinstance(model, torch.nn.Module):
        return
    for module in model.modules():
        if type(module) is not torch.nn.Linear:  # a quantised or otherwise special layer keeps its own
            continue
        weight = module.weight
        if weight.device.type != "cpu" or weight.dtype not in RELAID or weight.dim() != 2:
            continue
        column_major = weight.stride() == (1, weight.shape[0])
        if compiled and column_major:
            weight.data = weight.data.contiguous()
        elif not compiled and not column_major:
            weight.data = weight.data.t().contiguous().t()
