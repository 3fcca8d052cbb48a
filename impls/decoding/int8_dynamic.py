"""INT8 activations x INT8 weights for every linear layer (W8A8, dynamic).

The int8 kernels a device really has, never a dequantising stand-in:

- CPU: PyTorch's dynamic quantization (torch.ao.quantization.quantize_dynamic): weights
  stored int8 per tensor, activations quantised to int8 per batch on every call, the
  matmul run by the quantized engine (`torch.backends.quantized.engine`: x86 or fbgemm on
  x86 CPUs, both FBGEMM's int8 GEMM; qnnpack on ARM). As in PyTorch's BERT tutorial.
- CUDA: torch._int_mm (int8 x int8 -> int32, cuBLAS) with per-row activation scales
  (impls.decoding.int8_weights, path "int_mm").

`kernel_path(model)` names what ran, for records and claims; "dequantize" or "none"
means no int8 kernel did.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from impls.decoding.int8_weights import kernel_paths, quantize_linear_layers

CPU_ENGINES = ("x86", "fbgemm", "qnnpack", "onednn")


def quantize(model: nn.Module, device: str) -> nn.Module:
    """`model` (fp32, eval) with int8 x int8 linear layers; a CPU model is returned as a
    quantized copy, a CUDA model is changed in place."""
    if device == "cuda":
        return quantize_linear_layers(model, path="int_mm")
    engine = torch.backends.quantized.engine
    if engine not in CPU_ENGINES:
        raise NotImplementedError(f"no quantized engine on this CPU (torch.backends.quantized.engine={engine})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def kernel_path(model: nn.Module) -> str:
    """The int8 path the model's linear layers take: the CPU's quantized engine, or the CUDA
    layers' last path (int_mm, or dequantize when cuBLAS refused); 'none' without int8 layers."""
    dynamic = [m for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")]
    if dynamic:
        return torch.backends.quantized.engine
    paths = kernel_paths(model)
    return "+".join(sorted(paths)) if paths else "none"
