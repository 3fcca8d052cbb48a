"""FlashAttention 1 (flash-attn 1.x) behind our attention interface.

Kept so that FlashAttention-2's "2x over FlashAttention" can be checked: 1.x
and 2.x are the same distribution and cannot be installed side by side, so the
claim pairs a run made with each (across_runs in claims/claims.yaml).

1.x takes the tokens of the whole batch packed as (B * N, H, D), which our
(B, H, N, D) layout cannot view without a copy; that O(N * D) copy is timed
with the call, against the O(N^2 * D) of attention itself. 1.x has no grouped
heads, and its causal mask is top-left aligned, so it is used for
self-attention with Hkv == Hq only.

`pad_tokens` and `dropout_p` reproduce the README's benchmark (see padded.py): each
sequence keeps padding_lengths(...) tokens, packed without its padding (1.x's varlen
interface, as the README's script called it), with attention dropout; the padded rows of
the output are zero, as in naive_padded. Its reference is then padded_reference.
"""
from __future__ import annotations

import torch

from impls import requirements
from impls.attention import cost
from impls.attention.padded import padding_lengths
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
          peak_bytes=cost.flash_peak_bytes, reference="padded_reference",  # exact attention when pad_tokens is 0
          params={"pad_tokens": 0, "dropout_p": 0.0})
def flash_attn_v1(q, k, v, *, causal: bool, scale: float | None = None, pad_tokens: int = 0,
                  dropout_p: float = 0.0) -> torch.Tensor:
    """flash-attn 1.x's flash_attn_unpadded_func (FlashAttention 1 CUDA kernels), fwd and bwd."""
    from flash_attn.flash_attn_interface import flash_attn_unpadded_func  # optional, 1.x only

    batch, heads, n, dim = q.shape
    lengths = padding_lengths(batch, n, pad_tokens, q.device).to(torch.int32)
    starts = torch.nn.functional.pad(torch.cumsum(lengths, 0, dtype=torch.int32), (1, 0))
    keep = torch.arange(n, device=q.device)[None, :] < lengths[:, None]  # (B, N) real tokens

    def packed(x: torch.Tensor) -> torch.Tensor:  # (B, H, N, D) -> (tokens, H, D), padding dropped
        return x.transpose(1, 2)[keep]

    out = flash_attn_unpadded_func(packed(q), packed(k), packed(v), starts, starts, n, n, dropout_p,
                                   softmax_scale=scale, causal=causal)
    full = out.new_zeros(batch, n, heads, dim)
    full[keep] = out
    return full.transpose(1, 2)
