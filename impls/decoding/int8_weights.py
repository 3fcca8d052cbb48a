"""INT8 weight-only quantisation of linear layers (per-output-channel, symmetric).

Each row of a weight W (out, in) is stored as int8 q with one float scale
s = max|W_row| / 127, so W ~= q * s[:, None]. Activations stay in floating
point: y = (x @ q^T) * s + b.

The point is bandwidth: a decode step reads every weight once, so the matmul
must read the int8 bytes, not a float copy made from them. Three paths; the
first in `candidate_paths` that runs for the activation's device and dtype wins:

- "weight_int8pack_mm": torch's fused weight-only kernel, scales applied
  inside. On x86 CPUs torch vectorises it for bf16 activations only (its fp32
  and fp16 loop is scalar, about 2x slower than dequantising on an AVX2 CPU),
  so there it serves bf16; on ARM CPUs every float dtype; on CUDA where this
  torch build has a kernel. On a CPU only for in_features divisible by 16.
- "int_mm" (CUDA only): torch._int_mm, int8 x int8 -> int32, with the
  activations quantised per row on the fly. That is W8A8 numerics, a little
  further from the float layer than weight-only.
- "dequantize": the weight converted to the activation dtype on every call
  (the fallback: the reference's result, none of the bandwidth).

A path that raises for a (device, dtype, weight shape) is not tried again for
it. Each layer keeps the name of the path its last call took (`last_path`;
`kernel_paths` counts them over a model), so a record says which one ran.
"""
from __future__ import annotations

import platform
from collections import Counter
from typing import Callable

import torch
from torch import nn

PATHS = ("weight_int8pack_mm", "int_mm", "dequantize")
_FAILED: set[tuple] = set()  # (path, device type, dtype, out, in) that raised


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 q (out, in) and float32 scale (out,) with weight ~= q * scale[:, None]."""
    scale = weight.detach().float().abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(weight.detach().float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 weight (out, in) that `q` and `scale` stand for (the reference)."""
    return q.float() * scale[:, None]


def _int8pack(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu":
        # torch's CPU kernel steps through K 8 or 16 at a time with aligned vector loads and
        # checks neither: another K reads past the rows (garbage or a crash), and so does an
        # activation that starts off a 64-byte boundary (a view into a larger tensor)
        if x.shape[1] % 16:
            raise NotImplementedError(f"CPU int8 kernel needs in_features % 16 == 0, got {x.shape[1]}")
        if x.data_ptr() % 64:
            x = x.clone()  # a fresh allocation is 64-byte aligned
    return torch._weight_int8pack_mm(x, q, scale.to(x.dtype))


def _int_mm(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x quantised per row (symmetric int8), one int32 matmul, both scales on the output."""
    x_scale = x.float().abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0  # (M, 1)
    x_q = torch.round(x.float() / x_scale).clamp(-127, 127).to(torch.int8)
    rows = x_q.shape[0]
    if x_q.is_cuda and rows <= 16:  # cuBLAS int8 needs more than 16 rows: pad with zeros
        x_q = torch.cat([x_q, x_q.new_zeros(17 - rows, x_q.shape[1])])
    y = torch._int_mm(x_q, q.T)[:rows]  # (M, out) int32
    return (y.float() * x_scale * scale).to(x.dtype)


def _dequantize(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (x @ q.to(x.dtype).T) * scale.to(x.dtype)


KERNELS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "weight_int8pack_mm": _int8pack, "int_mm": _int_mm, "dequantize": _dequantize}


def candidate_paths(device: torch.device, dtype: torch.dtype) -> tuple[str, ...]:
    """The paths worth trying for activations of `dtype` on `device`, best first."""
    if device.type == "cuda":
        return PATHS
    if dtype == torch.bfloat16 or platform.machine().lower() in ("aarch64", "arm64"):
        return ("weight_int8pack_mm", "dequantize")
    return ("dequantize",)


def int8_matmul(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor,
                path: str | None = None) -> tuple[torch.Tensor, str]:
    """x (M, in) float @ (q * scale[:, None])^T -> (M, out) in x's dtype, and the path that ran.
    `path` forces one path (tests); None takes the first that works here."""
    if path is not None:
        return KERNELS[path](x, q, scale), path
    *kernels, fallback = candidate_paths(x.device, x.dtype)
    for name in kernels:
        key = (name, x.device.type, x.dtype, *q.shape)
        if key in _FAILED:
            continue
        try:
            return KERNELS[name](x, q, scale), name
        except (RuntimeError, NotImplementedError):  # no kernel for this device, dtype or shape
            _FAILED.add(key)
    return KERNELS[fallback](x, q, scale), fallback


class Int8Linear(nn.Module):
    """A drop-in for nn.Linear holding int8 weights and per-row scales."""

    def __init__(self, linear: nn.Linear, path: str | None = None):
        super().__init__()
        if path is not None and path not in KERNELS:
            raise ValueError(f"unknown int8 path '{path}'; valid: {', '.join(PATHS)}")
        q, scale = quantize_per_channel(linear.weight)
        self.in_features, self.out_features, self.path = linear.in_features, linear.out_features, path
        self.last_path: str | None = None
        self.register_buffer("weight_int8", q)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) float -> (..., out) in x's dtype."""
        y, self.last_path = int8_matmul(x.reshape(-1, self.in_features).contiguous(), self.weight_int8,
                                        self.scale, self.path)
        y = y.view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def quantize_linear_layers(model: nn.Module, path: str | None = None) -> nn.Module:
    """Replace every nn.Linear under `model` (in place) with an Int8Linear; returns model.

    A head tied to the embedding becomes an independent int8 copy (the embedding
    keeps its float weight), so tied models hold that matrix twice.
    """
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8Linear(child, path))
        else:
            quantize_linear_layers(child, path)
    return model


def kernel_paths(model: nn.Module) -> dict[str, int]:
    """How many Int8Linear layers took each path on their last call (none yet: {})."""
    return dict(Counter(m.last_path for m in model.modules() if isinstance(m, Int8Linear) and m.last_path))


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers (the weights a decode step must read)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
