"""INT8 weight-only quantisation of linear layers (per-output-channel, symmetric).

Each row of a weight W (out, in) is stored as int8 q with one float scale
s = max|W_row| / 127, so W ~= q * s[:, None]. Activations stay in floating
point: y = (x @ q^T) * s + b, which equals x @ (q * s)^T + b with the scale
applied to the (smaller) output instead of the matrix. The stored weights take
a quarter of their fp32 bytes; torch._int_mm is not used because it
needs int8 activations too (that is W8A8, a different numerics).
"""
from __future__ import annotations

import torch
from torch import nn


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 q (out, in) and float32 scale (out,) with weight ~= q * scale[:, None]."""
    scale = weight.detach().float().abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(weight.detach().float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The float32 weight (out, in) that `q` and `scale` stand for (the reference)."""
    return q.float() * scale[:, None]


class Int8Linear(nn.Module):
    """A drop-in for nn.Linear holding int8 weights and per-row scales."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale = quantize_per_channel(linear.weight)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_int8", q)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) float -> (..., out) in x's dtype."""
        y = (x @ self.weight_int8.to(x.dtype).T) * self.scale.to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def quantize_linear_layers(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear under `model` (in place) with an Int8Linear; returns model.

    A head tied to the embedding becomes an independent int8 copy (the embedding
    keeps its float weight), so tied models hold that matrix twice.
    """
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8Linear(child))
        else:
            quantize_linear_layers(child)
    return model


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers (the weights a decode step must read)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
