"""FlashAttention (forward and backward) written in Triton.

Tiles of queries stream over tiles of keys with an online softmax, so the
(N, M) score matrix never exists in memory; accumulation is fp32. The forward
pass saves only the output and one log-sum-exp per query row; the backward
pass recomputes the probabilities from them (FlashAttention-2 schedule): one
kernel per key tile accumulates dK and dV over every query head of its group,
another per query tile accumulates dQ, so no atomics are needed and the
result is deterministic. Grouped heads (Hkv divides Hq) are mapped inside the
kernels: query head h reads kv head h // (Hq / Hkv).

Softmax runs in base 2 (exp2 with the scale folded into log2(e)), the usual
trick that saves a multiply per score. Causal is bottom-right aligned: query
i sees key j iff j <= i + M - N.

On the CPU the kernels run only under TRITON_INTERPRET=1 (set before the
first call, when the kernels in _triton_flash_kernels.py are imported), with one small tile size; on CUDA tile sizes are autotuned per
(N, M, D, causal).
"""
from __future__ import annotations

import importlib
import os
import sys

import torch

from impls import requirements
from impls.attention import cost
from impls.registry import register
from impls.attention.scale import default_scale


KERNELS = "impls.attention._triton_flash_kernels"


def kernels():
    """The kernel module, imported on first use."""
    return importlib.import_module(KERNELS)


def interpreted() -> bool:
    """Whether the kernels run in triton's interpreter: as they were decorated if they have
    been, else as they would be now."""
    module = sys.modules.get(KERNELS)
    return module.INTERPRETED if module else os.environ.get("TRITON_INTERPRET") == "1"


def _interpreter_matches(device: str, precision: str) -> str | None:
    """The kernels are decorated for one mode when first imported; the device must fit it."""
    if device == "cpu" and not interpreted():
        return "triton_flash was imported without TRITON_INTERPRET=1; set it before starting Python"
    if device == "cuda" and interpreted():
        return "triton_flash was imported under TRITON_INTERPRET=1, which cannot drive a GPU"
    return None


@register("attention", "triton_flash", requires=(requirements.triton, _interpreter_matches),
          precisions=("fp32", "fp16", "bf16"), flops=cost.flops, bytes_moved=cost.bytes_moved,
          peak_bytes=cost.flash_peak_bytes)
def triton_flash(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """FlashAttention-2 in Triton: tiled online softmax, fp32 accumulation, fwd+bwd kernels."""
    scale = default_scale(q, scale)
    return kernels().FlashAttention.apply(q, k, v, causal, scale)
