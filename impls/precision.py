"""Precision names used across seqbench and the torch dtypes behind them."""
from __future__ import annotations

import torch

FLOAT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def input_dtype(precision: str, device: str) -> torch.dtype:
    """Dtype of activations fed to an impl; int8 impls quantise internally from fp16 (GPU) or fp32 (CPU)."""
    if precision == "int8":
        return torch.float16 if device == "cuda" else torch.float32
    return FLOAT_DTYPES[precision]
