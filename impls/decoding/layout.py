"""Where a linear layer's weight lies in memory when a batch-1 decode step reads it.

A decode step at batch 1 multiplies one row by each weight: a matrix-vector product,
bound by how fast the weight is read. torch's CPU GEMV reads an nn.Linear weight
(out, in) stored row by row more slowly than the same weight stored column by column,
that is as (in, out) rows, the layout of GPT-2's Conv1D: at GPT-2 124M shapes, one
thread, the step read 8.7 GB/s row-major against 16.5 GB/s column-major (fastest of
five calls each, in alternation; scripts/decode_vs_transformers.py). The compiled step
wants rows again: it generates each one-row product as a reduction along contiguous
memory (impls/decoding/compiled.py).

bf16 weights take another road: torch's bf16 GEMV reads about 4 GB/s here in either
layout, slower than fp32 per byte, so a bf16 model would decode slower than its fp32
twin. Where oneDNN has bf16 kernels (AVX512-BF16 or AMX), an eager decode's bf16 linear
layers run oneDNN's linear over a weight copy packed once in its blocked layout (the same
kernel inductor's CPU freezing picks): at GPT-2 124M shapes, one thread, 9 ms against
22 ms for the LM head (scripts/decode_vs_transformers.py --variants bf16 measures the
whole decode). Its results equal F.linear's bit for bit (tested). The packed copy is a
second copy of those weights (bf16: as many bytes as the fp32 model would hold), made
when the session starts and dropped when the model is laid out for a compiled step.

Only the memory layout changes: the values, the parameters' identity (a tied head stays
tied) and every result are the same.
"""
from __future__ import annotations

from typing import Any

import torch

RELAID = (torch.float32, torch.float64)  # where the column-major GEMV was measured faster


class PackedLinear(torch.nn.Linear):
    """An nn.Linear whose forward reads a oneDNN-packed copy of its bf16 weight, packed again
    whenever the weight is replaced or changed in place (and after a copy or pickle, which
    leave the opaque packed tensor behind)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if x.dtype != torch.bfloat16 or weight.dtype != torch.bfloat16 or x.device.type != "cpu":
            return super().forward(x)
        key = (weight.data_ptr(), weight._version)
        if getattr(self, "_packed_for", None) != key:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)
            self._packed_for = key
        return torch.ops.mkldnn._linear_pointwise(x, self._packed, self.bias, "none", [], "")

    def __getstate__(self) -> dict:
        state = super().__getstate__().copy()
        state.pop("_packed", None)
        state.pop("_packed_for", None)
        return state


def _packs_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _pack(module: torch.nn.Linear) -> None:
    module.__class__ = PackedLinear  # packs at its first call


def _unpack(module: PackedLinear) -> None:
    module.__dict__.pop("_packed", None)
    module.__dict__.pop("_packed_for", None)
    module.__class__ = torch.nn.Linear


def lay_out_for_decoding(model: Any, compiled: bool) -> None:
    """The CPU linear weights of `model` column-major (fp32, fp64) or oneDNN-packed (bf16)
    for an eager decode, row-major and unpacked for a compiled one; a no-op on a GPU, for
    other dtypes and once laid out."""
    if not isinstance(model, torch.nn.Module):
        return
    for module in model.modules():
        if type(module) is PackedLinear and compiled:
            _unpack(module)  # inductor generates its own reduction over the plain weight
        if type(module) is not torch.nn.Linear:  # a quantised or otherwise special layer keeps its own
            continue
        weight = module.weight
        if weight.device.type != "cpu" or weight.dim() != 2:
            continue
        if weight.dtype == torch.bfloat16 and not compiled and _packs_bf16():
            _pack(module)
            continue
        if weight.dtype not in RELAID:
            continue
        column_major = weight.stride() == (1, weight.shape[0])
        if compiled and column_major:
            weight.data = weight.data.contiguous()
        elif not compiled and not column_major:
            weight.data = weight.data.t().contiguous().t()
