"""Quantized linear layers beyond INT8 weight-only (impls.decoding.int8_weights) and dynamic
INT8 (impls.decoding.int8_dynamic), each with its plain-PyTorch reference:

- Int4Linear: weight-only, group-wise asymmetric 4-bit (the layout torch's packed int4
  matmul reads: q in 0..15, w = (q - 8) * scale + zero per group of `group_size` inputs).
  Paths: "int4pack_mm" (torch._weight_int4pack_mm_for_cpu on a CPU, _weight_int4pack_mm
  on CUDA with bf16 activations) or "dequantize" (the float weight rebuilt every call).
- StaticInt8Linear: W8A8 with the activation scale fixed from calibration batches (per
  tensor, symmetric), weights int8 per output channel; with `smooth` (SmoothQuant, Xiao et
  al. 2023) the activation outliers are first moved into the weights: x / s and W * s per
  input channel, s_j = max|x_j|^alpha / max|W_j|^(1 - alpha). The division by s runs as
  one elementwise op before the matmul (SmoothQuant folds it into the preceding norm; the
  numbers are the same). Paths: "int_mm" (torch._int_mm, int8 x int8 -> int32, on CPU and
  CUDA) or "dequantize" (the same rounding, computed in float).
- Fp8Linear: e4m3 weights and activations, one scale each (per tensor; the activation's
  from the call itself), torch._scaled_mm. Path "scaled_mm", or "dequantize".

Every layer keeps `last_path`, the kernel its last call took.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch
from torch import nn

from impls.decoding.int8_weights import quantize_per_channel

INT4_PATHS = ("int4pack_mm", "dequantize")
FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite e4m3fn


# ---- int4 weight-only, group-wise ----------------------------------------------------------

def quantize_int4(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q (out, in) int32 in 0..15 and scales_and_zeros (in / group_size, out, 2) float32 with
    w ~= (q - 8) * scale + zero over each group of `group_size` consecutive inputs."""
    out_features, in_features = weight.shape
    if in_features % group_size or group_size % 2:
        raise ValueError(f"in_features={in_features} is not a multiple of group_size={group_size}, or it is odd")
    groups = weight.detach().float().reshape(out_features, in_features // group_size, group_size)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-8)
    q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32)
    zero = low + 8 * scale  # so that (q - 8) * scale + zero = low + q * scale
    return q.reshape(out_features, in_features), torch.stack([scale, zero], -1).transpose(0, 1).contiguous()


def dequantize_int4(q: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """The float32 weight (out, in) that `q` and `scales_and_zeros` stand for (the reference)."""
    out_features, in_features = q.shape
    scale, zero = scales_and_zeros.transpose(0, 1).unbind(-1)  # (out, groups) each
    groups = q.reshape(out_features, in_features // group_size, group_size).float()
    return ((groups - 8) * scale[..., None] + zero[..., None]).reshape(out_features, in_features)


def pack_nibbles(q: torch.Tensor) -> torch.Tensor:
    """q (out, in) with values 0..15, in even -> (out, in / 2) uint8, the even column in the high half."""
    return (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)


def unpack_nibbles(nibbles: torch.Tensor) -> torch.Tensor:
    """pack_nibbles' inverse: (out, in / 2) uint8 -> (out, in) int32."""
    wide = nibbles.to(torch.int32)
    return torch.stack([wide >> 4, wide & 15], -1).flatten(1)


def _pack_int4(q: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":  # packed nibbles, then the tensor-core tiling (inner_k_tiles 8)
        return torch.ops.aten._convert_weight_to_int4pack(pack_nibbles(q).to(device), 8)
    return torch._convert_weight_to_int4pack_for_cpu(q.to(device), 1)


class Int4Linear(nn.Module):
    """A drop-in for nn.Linear with group-wise int4 weights."""

    def __init__(self, linear: nn.Linear, group_size: int = 32):
        super().__init__()
        self.in_features, self.out_features, self.group_size = linear.in_features, linear.out_features, group_size
        q, scales_and_zeros = quantize_int4(linear.weight, group_size)
        self.register_buffer("nibbles", pack_nibbles(q))  # two 4-bit values a byte, as stored
        self.register_buffer("scales_and_zeros", scales_and_zeros)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.packed: torch.Tensor | None = None
        self.last_path: str | None = None

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cuda" and x.dtype != torch.bfloat16:
            raise NotImplementedError("CUDA's int4 kernel takes bf16 activations")
        if self.packed is None or self.packed.device != x.device:
            self.packed = _pack_int4(unpack_nibbles(self.nibbles), x.device)  # the kernel's own layout, once
        scales = self.scales_and_zeros.to(x.dtype)
        if x.device.type == "cuda":
            return torch.ops.aten._weight_int4pack_mm(x, self.packed, self.group_size, scales)
        return torch._weight_int4pack_mm_for_cpu(x, self.packed, self.group_size, scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).contiguous()
        try:
            y, self.last_path = self._kernel(rows), "int4pack_mm"
        except (RuntimeError, NotImplementedError):  # no kernel for this device, dtype or shape
            weight = dequantize_int4(unpack_nibbles(self.nibbles), self.scales_and_zeros, self.group_size)
            y, self.last_path = rows @ weight.to(x.dtype).T, "dequantize"
        y = y.view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)


# ---- static W8A8 with calibration (and SmoothQuant) -------------------------------------------

def smoothing_factors(act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel s (in,): max|x_j|^alpha / max|W_:,j|^(1 - alpha)."""
    w_absmax = weight.detach().float().abs().amax(dim=0).clamp(min=1e-5)
    return (act_absmax.clamp(min=1e-5) ** alpha / w_absmax ** (1 - alpha)).clamp(min=1e-5)


def quantize_rows(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8)


class StaticInt8Linear(nn.Module):
    """W8A8 with a calibrated activation scale: y = (q_x @ q_w^T) * x_scale * w_scale + b."""

    def __init__(self, linear: nn.Linear, act_absmax: torch.Tensor, smooth_alpha: float | None = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        smooth = (smoothing_factors(act_absmax, weight, smooth_alpha) if smooth_alpha is not None
                  else torch.ones(self.in_features))
        q, w_scale = quantize_per_channel(weight * smooth)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", w_scale)
        self.register_buffer("smooth", smooth)
        self.register_buffer("x_scale", ((act_absmax / smooth).amax().clamp(min=1e-8) / 127).reshape(()))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.last_path: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float() / self.smooth
        x_q = quantize_rows(rows, self.x_scale)
        try:
            acc, self.last_path = torch._int_mm(x_q, self.weight_int8.T).float(), "int_mm"
        except RuntimeError:  # cuBLAS wants more than 16 rows and aligned sizes; a CPU takes any
            acc, self.last_path = x_q.float() @ self.weight_int8.float().T, "dequantize"
        y = (acc * (self.x_scale * self.weight_scale)).to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)


def static_int8_reference(x: torch.Tensor, linear: nn.Linear, act_absmax: torch.Tensor,
                          smooth_alpha: float | None) -> torch.Tensor:
    """StaticInt8Linear's numbers in float64, from the float layer and the calibrated maxima."""
    weight = linear.weight.detach().double()
    smooth = (smoothing_factors(act_absmax, linear.weight, smooth_alpha).double() if smooth_alpha is not None
              else torch.ones(weight.shape[1], dtype=torch.float64))
    w = weight * smooth
    w_scale = (w.abs().amax(1).clamp(min=1e-12) / 127.0)
    w_q = torch.round(w / w_scale[:, None]).clamp(-127, 127)
    x_scale = ((act_absmax.double() / smooth).amax().clamp(min=1e-8) / 127)
    x_q = torch.round(x.double() / smooth / x_scale).clamp(-127, 127)
    y = (x_q @ w_q.T) * x_scale * w_scale
    return y if linear.bias is None else y + linear.bias.double()


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| (in,) seen by every nn.Linear, by module name, over `batches`."""
    maxima: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable:
        def record(module, inputs, output):
            seen = inputs[0].detach().float().reshape(-1, module.in_features).abs().amax(0)
            maxima[name] = torch.maximum(maxima[name], seen) if name in maxima else seen
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    try:
        for batch in batches:  # a tensor, or a tuple of a model's inputs (source, target)
            model(*batch) if isinstance(batch, tuple) else model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return maxima


# ---- fp8 (e4m3) -------------------------------------------------------------------------------

def to_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x as e4m3 and the float32 scale with x ~= fp8 * scale (per tensor)."""
    scale = (x.detach().float().abs().amax().clamp(min=1e-12) / FP8_MAX).reshape(())
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


class Fp8Linear(nn.Module):
    """e4m3 weight (one scale) times e4m3 activations (scaled per call) on torch._scaled_mm."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight, scale = to_fp8(linear.weight)
        self.register_buffer("weight_fp8", weight)
        self.register_buffer("weight_scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.last_path: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_fp8, x_scale = to_fp8(x.reshape(-1, self.in_features))
        try:
            y = torch._scaled_mm(x_fp8, self.weight_fp8.T, scale_a=x_scale, scale_b=self.weight_scale,
                                 out_dtype=torch.float32)
            self.last_path = "scaled_mm"
        except RuntimeError:  # a GPU before sm_89, or sizes the kernel does not take (multiples of 16)
            y = (x_fp8.float() * x_scale) @ (self.weight_fp8.float() * self.weight_scale).T
            self.last_path = "dequantize"
        y = y.to(x.dtype).view(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)


# ---- whole models ------------------------------------------------------------------------------

def replace_linears(model: nn.Module, make: Callable[[str, nn.Linear], nn.Module], prefix: str = "") -> nn.Module:
    """Every nn.Linear under `model` replaced (in place) by make(its name, it); returns model.
    A head tied to the embedding becomes an independent copy (the embedding stays float)."""
    for name, child in list(model.named_children()):
        full = f"{prefix}{name}"
        if isinstance(child, nn.Linear):
            setattr(model, name, make(full, child))
        else:
            replace_linears(child, make, f"{full}.")
    return model


def int4_weight_only(model: nn.Module, group_size: int = 32) -> nn.Module:
    """Every linear layer whose inputs split into groups of `group_size` as Int4Linear; a
    narrower one (Mamba's dt projection takes dt_rank inputs) stays float."""
    return replace_linears(copy.deepcopy(model), lambda _, linear: (
        Int4Linear(linear, group_size) if linear.in_features % group_size == 0 else linear))


def static_w8a8(model: nn.Module, batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...]], smooth_alpha: float | None = None) -> nn.Module:
    maxima = calibrate(model, batches)
    return replace_linears(copy.deepcopy(model),
                           lambda name, linear: StaticInt8Linear(linear, maxima[name], smooth_alpha))


def fp8(model: nn.Module) -> nn.Module:
    return replace_linears(copy.deepcopy(model), lambda _, linear: Fp8Linear(linear))
