"""FlashAttention-3 (Shah et al. 2024, Hopper GPUs) behind our attention interface.

FlashAttention-3 ships as the `flash_attn_interface` module built from flash-attention's
hopper/ folder (it needs an H100-class GPU, compute capability 9.0). Its
flash_attn_func takes (B, N, H, D) like FlashAttention-2's, handles grouped heads, and
aligns its causal mask bottom-right. Recent builds return the output alone, older ones
(output, softmax_lse); both are handled. Imported on the first call.
"""
from __future__ import annotations

import torch

from impls import requirements
from impls.attention import cost
from impls.registry import register


@register("attention", "flash_attn_v3", precisions=("fp16", "bf16"),
          requires=(requirements.module("flash_attn_interface", "flash-attn (hopper build)"),
                    requirements.capability(9, 0)),
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.flash_peak_bytes)
def flash_attn_v3(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """FlashAttention-3's flash_attn_func (Hopper kernels: warp specialisation, TMA, wgmma), fwd and bwd."""
    from flash_attn_interface import flash_attn_func  # optional: the hopper build of flash-attention

    out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), softmax_scale=scale,
                          causal=causal)
    out = out[0] if isinstance(out, tuple) else out  # (B, N, Hq, D)
    return out.transpose(1, 2)
