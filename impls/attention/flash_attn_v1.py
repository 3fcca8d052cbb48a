"""FlashAttention 1 (flash-attn 1.x) behind our attention interface.

Kept so that FlashAttention-2's "2x over FlashAttention" can be checked: 1.x
and 2.x are the same distribution and cannot be installed side by side, so the
claim pairs a run made with each (across_runs in claims/claims.yaml).

1.x takes the tokens of the whole batch packed as (B * N, H, D), which our
(B, H, N, D) layout cannot view without a copy; that O(N * D) copy is timed
with the call, against the O(N^2 * D) of attention itself. 1.x has no grouped
heads, and its causal mask is top-left aligned, so it is used for
self-attention with Hkv == Hq only.
"""
from __future__ import annotations

import torch

from impls import requirements
from impls.attention import cost
from impls.registry import register


def _self_attention_same_heads(p: dict) -> str | None:
    if (p.get("kv_len") or p["seq_len"]) != p["seq_len"]:
        return "flash-attn 1.x aligns its causal mask top-left: used for kv_len == seq_len only"
    if (p.get("kv_heads") or p["heads"]) != p["heads"]:
        return "flash-attn 1.x has no grouped heads (kv_heads must equal heads)"
    return None


@register("attention", "flash_attn_v1", precisions=("fp16", "bf16"),
          requires=(requirements.version("flash-attn", at_least=(1,), below=(2,)), requirements.capability(7, 5)),
          supports=_self_attention_same_heads, flops=cost.flops, bytes_moved=cost.bytes_moved,
          peak_bytes=cost.flash_peak_bytes)
def flash_attn_v1(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """flash-attn 1.x's flash_attn_unpadded_func (FlashAttention 1 CUDA kernels), fwd and bwd."""
    from flash_attn.flash_attn_interface import flash_attn_unpadded_func  # optional, 1.x only

    batch, heads, n, dim = q.shape
    starts = torch.arange(0, (batch + 1) * n, n, dtype=torch.int32, device=q.device)

    def packed(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(batch * n, heads, dim)

    out = flash_attn_unpadded_func(packed(q), packed(k), packed(v), starts, starts, n, n, 0.0,
                                   softmax_scale=scale, causal=causal)
    return out.view(batch, n, heads, dim).transpose(1, 2)
