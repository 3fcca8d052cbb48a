"""Long Range Arena's "local attention", as LRA's code computes it: strided groups, not a window.

LRA (lra_benchmarks/models/local/local_attention.py) pads the sequence with
`block_size - N % block_size` positions (a whole extra block when N divides evenly) to a
length L, reshapes (B, L, H, D) to (B, block_size, L / block_size, H, D) and attends along
the block_size axis. Position t = r * nb + c (nb = L / block_size) lands in row r, column c,
so a query sees the block_size positions of its own column: every t' with t' = t (mod nb),
strided nb apart, not its neighbours. Each query costs block_size keys: O(N * block_size),
the same cost as a contiguous block-local pattern, which is why LRA's timings stand for
local attention; `local` (a sliding window) is the other reading of the name.

Here padded keys are masked out (zero vectors in LRA, whose bias-free projections of zero
padding give k = v = 0; its padding mask is laid out in contiguous blocks, so it does not
line up with these groups). Only the cost claims use this impl; the attention pattern is
exactly the one below. Non-causal (LRA's encoders), self-attention only.
"""
from __future__ import annotations

import torch

from impls.attention import blocksparse, cost, masks
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

LRA_BLOCK = 50  # LocalTransformerEncoder's default block_size, which LRA's configs keep


def padded_length(n: int, block_size: int) -> int:
    """LRA's padded length: n plus block_size - n % block_size (a whole block when n divides)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return n + block_size - n % block_size


def group_mask(n: int, block_size: int, device=None) -> torch.Tensor:
    """(n, n) mask: query i sees key j iff i = j modulo the number of columns."""
    columns = padded_length(n, block_size) // block_size
    positions = torch.arange(n, device=device)
    return (positions[:, None] % columns) == (positions[None, :] % columns)


def _noncausal_self(p: dict) -> str | None:
    if p.get("causal"):
        return "LRA's local attention has no causal form (it is an encoder's attention)"
    return blocksparse.self_attention_only(p)


def _work(p: dict) -> blocksparse.Work:
    block = int(p.get("block_size", LRA_BLOCK))
    length = padded_length(int(p["seq_len"]), block)
    return blocksparse.Work(pairs=length * block, key_rows=length)


@register("attention", "lra_local", exact=False, supports=_noncausal_self, reference="lra_local_reference",
          params={"block_size": LRA_BLOCK}, **blocksparse.pattern_costs(_work))
def lra_local(q, k, v, *, causal: bool, scale: float | None = None, block_size: int = LRA_BLOCK) -> torch.Tensor:
    """q (B, H, N, D); k, v (B, Hkv, N, D): LRA's strided-group local attention."""
    blocksparse.require_self_attention("LRA local attention", q, k)
    if causal:
        raise ValueError("LRA's local attention is non-causal (an encoder's)")
    batch, heads, n, dim = q.shape
    k, v = masks.repeat_kv(k, heads), masks.repeat_kv(v, heads)
    length = padded_length(n, block_size)
    columns = length // block_size

    def grouped(x: torch.Tensor) -> torch.Tensor:  # (B, H, N, D) -> (B, H, columns, block_size, D)
        x = torch.nn.functional.pad(x, (0, 0, 0, length - n))
        return x.view(batch, heads, block_size, columns, dim).transpose(2, 3)

    valid = (torch.arange(length, device=q.device) < n).view(block_size, columns).T  # (columns, block_size)
    out, _ = blocksparse.masked_attention(grouped(q), grouped(k), grouped(v), valid[:, None, :],
                                          default_scale(q, scale))
    out = out.transpose(2, 3).reshape(batch, heads, length, dim)[:, :, :n]
    return out.to(q.dtype)


@register("attention", "lra_local_reference", reference="lra_local_reference", supports=_noncausal_self,
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.fp64_peak_bytes,
          params={"block_size": LRA_BLOCK})
def lra_local_reference(q, k, v, *, causal: bool, scale: float | None = None,
                        block_size: int = LRA_BLOCK) -> torch.Tensor:
    """fp64 attention under group_mask: the specification of `lra_local`."""
    blocksparse.require_self_attention("LRA local attention", q, k)
    if causal:
        raise ValueError("LRA's local attention is non-causal (an encoder's)")
    keep = group_mask(q.shape[-2], block_size, q.device)
    return attention_fp64(q, k, v, causal=False, scale=scale, keep=keep).to(q.dtype)
