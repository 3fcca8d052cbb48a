"""The flash-attn library (Dao et al.) behind our attention interface.

flash_attn_func takes (B, N, H, D), so q, k, v are viewed transposed (no
copy: the last dimension stays contiguous) and the output transposed back.
Since flash-attn 2.1 its causal mask is bottom-right aligned, like ours, and
it handles grouped heads (Hkv dividing Hq) itself; hence the need for 2.1 or
later (flash_attn_v1.py wraps 1.x). The library is imported on the first
call, so this module loads where it is not installed.
"""
from __future__ import annotations

import torch

from impls import requirements
from impls.attention import cost
from impls.registry import register


# The library check comes first: "flash-attn is not installed" is the reason a user can act on.
@register("attention", "flash_attn", precisions=("fp16", "bf16"),
          requires=(requirements.version("flash-attn", at_least=(2, 1)), requirements.capability(8, 0)),
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.flash_peak_bytes)
def flash_attn(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """flash-attn's flash_attn_func (FlashAttention-2 CUDA kernels), fwd and bwd."""
    from flash_attn import flash_attn_func  # optional dependency: only when called

    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                          softmax_scale=scale, causal=causal)  # (B, N, Hq, D)
    return out.transpose(1, 2)
