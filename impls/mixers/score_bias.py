"""The attention impls that take an additive score bias: how the attention mixer runs ALiBi.

The attention interface has no bias argument, so each impl whose computation
can add one to its scores is called here with it, the same computation
otherwise:

  naive            masked_attention: fp32 scores + bias, masked, softmax
  reference        the same in float64, returned in q's dtype
  sdpa_math,       torch SDPA pinned to that backend, the bias and the mask given
  sdpa_efficient   as one float attn_mask (in q's dtype, as SDPA requires)

Every other impl (sdpa_flash and sdpa_cudnn, whose kernels take no arbitrary
bias here, flash-attn, triton_flash, chunked, flex, int8 and the sparse
patterns) cannot run ALiBi: the mixer refuses them by name rather than timing
one of these in their place.

    BIASED[name](q, k, v, keep (N, M) bool, bias (H, N, M) float32) -> (B, H, N, D)
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

from impls.attention.sdpa import BACKENDS
from impls.errors import Unsupported
from impls.mixers.masked_attention import masked_attention

Biased = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _reference(q, k, v, keep, bias) -> torch.Tensor:
    return masked_attention(q.double(), k.double(), v.double(), keep, bias).to(q.dtype)


def _sdpa(name: str) -> Biased:
    def run(q, k, v, keep, bias):
        mask = bias.to(q.dtype).masked_fill(~keep, float("-inf"))  # (H, N, M), broadcast over the batch
        with sdpa_kernel(BACKENDS[name]):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=k.shape[1] != q.shape[1])

    return run


BIASED: dict[str, Biased] = {
    "naive": masked_attention, "reference": _reference,
    "sdpa_math": _sdpa("sdpa_math"), "sdpa_efficient": _sdpa("sdpa_efficient"),
}


def require_bias(name: str) -> None:
    """Unsupported unless attention impl `name` takes a score bias (what ALiBi needs)."""
    if name not in BIASED:
        raise Unsupported(f"attention impl '{name}' takes no score bias, so it cannot run ALiBi; "
                          f"impls that do: {', '.join(BIASED)}")
