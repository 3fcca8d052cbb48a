"""Precision names used across seqbench, the torch dtypes behind them, and the tolerances
an output is checked against at each precision."""
from __future__ import annotations

import torch

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
FLOAT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPES = FLOAT_DTYPES | {"int8": torch.int8}

# Relative error (max |out - ref| / max |ref|) allowed against the fp64 reference: one
# attention op's output and its gradients (harness.workloads.op_attention) ...
ATTENTION_TOLERANCE = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 3e-2, "int8": 6e-2}
ATTENTION_GRAD_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 8e-2, "int8": 1.5e-1}
# ... and a model's logits, max |diff| / max |logits|: incremental decoding against the full
# forward (model, generate), a classifier against its float64 twin (classify)
LOGITS_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}


def input_dtype(precision: str, device: str) -> torch.dtype:
    """Dtype of activations fed to an impl; int8 impls quantise internally from fp16 (GPU) or fp32 (CPU)."""
    if precision == "int8":
        return torch.float16 if device == "cuda" else torch.float32
    return FLOAT_DTYPES[precision]
