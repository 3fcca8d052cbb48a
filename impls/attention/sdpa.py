"""PyTorch scaled_dot_product_attention, pinned to one backend per impl, and unpinned.

torch picks a backend per call; pinning it (sdpa_kernel) makes each backend a
separate, comparable impl. "sdpa" leaves the choice to torch (no context entered):
the fused kernel wherever one applies (flash on a CPU; flash or efficient on a GPU,
fp32 included), which is what a model wants by default. Availability is probed with
a tiny call, because which backend runs where depends on the torch build, the device
and the dtype.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache, partial

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from impls.attention import cost, masks
from impls.precision import FLOAT_DTYPES as DTYPES
from impls.registry import register

BACKENDS: dict[str, SDPBackend | None] = {
    "sdpa": None,  # torch's own choice
    "sdpa_math": SDPBackend.MATH,
    "sdpa_efficient": SDPBackend.EFFICIENT_ATTENTION,
    "sdpa_flash": SDPBackend.FLASH_ATTENTION,
    "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
}


def sdpa(q, k, v, *, causal: bool, scale: float | None = None, backend: SDPBackend | None) -> torch.Tensor:
    n, m = q.shape[-2], k.shape[-2]
    # torch's is_causal is top-left aligned; ours is bottom-right, equal when n == m.
    mask = masks.causal(n, m, q.device) if causal and n != m else None
    with nullcontext() if backend is None else sdpa_kernel(backend):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal and mask is None, scale=scale,
            enable_gqa=k.shape[1] != q.shape[1])


@lru_cache(maxsize=None)
def _probe(backend: SDPBackend | None, device: str, precision: str) -> str | None:
    """None if torch can run `backend` here, else the reason."""
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    q = torch.randn(1, 2, 16, 64, device=device, dtype=DTYPES[precision])
    try:
        sdpa(q, q, q, causal=True, backend=backend)
    except RuntimeError:
        kind = backend.name if backend else "default"
        return f"torch {torch.__version__} has no {kind} SDPA kernel for {precision} on {device}"
    return None


# The math backend materialises the scores; the others are fused kernels.
PEAK_BYTES = {SDPBackend.MATH: cost.sdpa_math_peak_bytes}

for _name, _backend in BACKENDS.items():
    register(
        "attention", _name, precisions=("fp32", "fp16", "bf16"), flops=cost.flops,
        bytes_moved=cost.bytes_moved,
        doc=f"torch SDPA pinned to its {_backend.name} backend" if _backend else "torch SDPA, backend chosen by torch",
        requires=(lambda device, precision, b=_backend: _probe(b, device, precision),),
        peak_bytes=PEAK_BYTES.get(_backend, cost.flash_peak_bytes),
    )(partial(sdpa, backend=_backend))
