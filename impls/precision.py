"""Precision names used across seqbench, the torch dtypes behind them, and the tolerances
an output is checked against at each precision.

Torch is imported when a dtype is first asked for, not with the names: the runner reads a
suite's precisions without torch (it is the worker that needs it)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "fp16", "bf16", "int8")

# Relative error (max |out - ref| / max |ref|) allowed against the fp64 reference: one
# attention op's output and its gradients (harness.workloads.op_attention) ...
ATTENTION_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 3e-2, "int8": 6e-2}
ATTENTION_GRAD_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 8e-2, "int8": 1.5e-1}
# ... and a model's logits, max |diff| / max |logits|: incremental decoding against the full
# forward (model, generate), a classifier against its float64 twin (classify)
LOGITS_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}


def __getattr__(name: str) -> Any:
    """FLOAT_DTYPES (fp32/fp16/bf16 -> torch dtype) and DTYPES (those and int8), made on first use."""
    if name not in ("FLOAT_DTYPES", "DTYPES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import torch

    floats = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    globals().update(FLOAT_DTYPES=floats, DTYPES=floats | {"int8": torch.int8})
    return globals()[name]


def input_dtype(precision: str, device: str) -> torch.dtype:
    """Dtype of activations fed to an impl; int8 impls quantise internally from fp16 (GPU) or fp32 (CPU)."""
    import torch

    if precision == "int8":
        return torch.float16 if device == "cuda" else torch.float32
    return __getattr__("FLOAT_DTYPES")[precision]
