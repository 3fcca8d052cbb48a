"""Exact attention by blocks with an online softmax, in plain PyTorch.

Queries are taken `block_size` at a time; for each query block the key blocks
are visited in order while a running row max, row sum and fp32 output
accumulator are rescaled (the FlashAttention recurrence). The full N x M score
matrix never exists: the forward pass needs O(B*H*(N*D + block_size^2)) extra
memory. Causal (bottom-right aligned) skips key blocks that lie wholly in the
future and masks only the blocks that straddle the diagonal.

Grouped heads (Hkv < Hq) are handled without copying K and V: the g = Hq/Hkv
query heads of a group are stacked as extra rows of one matmul per KV head.

Scores are kept in base 2: the softmax scale times log2(e) is folded into the
queries and exponentials are exp2, the same softmax (as FlashAttention-2 and the
Triton kernel compute it); torch's exp2 ran 3.5x faster than its exp on this CPU.

Backward goes through autograd, which saves every block's scores and
probabilities, so memory for forward+backward is O(N*M), not linear.
"""
from __future__ import annotations

import math

import torch

from impls.attention import cost
from impls.registry import register
from impls.attention.scale import default_scale

LOG2E = math.log2(math.e)
# Tiles of 256 x 256: for 8 heads at once 2 MB of fp32 scores (one core's L2 here), and a
# quarter of the operator calls of 128 x 128 tiles (B1 H8 N4096 D64 on one thread: 1.34-1.49x
# sdpa_flash's time against 1.52x; 512 x 512 spilled out of the cache: 1.65-2.25x).
BLOCK = 256


def _visited_keys(q_end: int, m: int, offset: int, causal: bool) -> int:
    """How many keys (0..count-1) a query block ending at q_end must visit; offset = M - N."""
    return min(m, q_end + offset) if causal else m


def chunked(q, k, v, *, causal: bool, scale: float | None = None, block_size: int = BLOCK) -> torch.Tensor:
    """Exact attention, online softmax over (block_size x block_size) tiles."""
    batch, heads, n, dim = q.shape
    kv_heads, m = k.shape[1], k.shape[2]
    if heads % kv_heads:
        raise ValueError(f"query heads ({heads}) must be a multiple of kv heads ({kv_heads})")
    if causal and n > m:
        raise ValueError(f"causal attention needs kv_len >= seq_len, got seq_len={n}, kv_len={m}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    group = heads // kv_heads
    scale = default_scale(q, scale)
    grouped = q.reshape(batch, kv_heads, group, n, dim)
    outs = []
    for start in range(0, n, block_size):
        end = min(start + block_size, n)
        # scaling q once per block, not each (b x b) tile, saves one pass per tile
        rows = grouped[:, :, :, start:end].reshape(batch, kv_heads, group * (end - start), dim) * (scale * LOG2E)
        out = _query_block(rows, k, v, start, end, m - n, causal, block_size)
        outs.append(out.view(batch, kv_heads, group, end - start, dim))
    return torch.cat(outs, dim=3).reshape(batch, heads, n, dim)


def _query_block(rows, k, v, start: int, end: int, offset: int, causal: bool, block: int) -> torch.Tensor:
    """Output of queries [start, end) for every head of a group, in q's dtype.

    rows (B, Hkv, g*b, D): the g query heads of a group stacked and pre-scaled (scale * log2 e),
    b = end - start; k, v (B, Hkv, M, D). offset = M - N aligns the causal diagonal bottom-right.
    """
    m, width = k.shape[2], end - start
    group = rows.shape[2] // width
    row_max = rows.new_full(rows.shape[:3], float("-inf"), dtype=torch.float32)
    row_sum = rows.new_zeros(rows.shape[:3], dtype=torch.float32)
    acc = rows.new_zeros(rows.shape, dtype=torch.float32)
    query_pos = torch.arange(start, end, device=rows.device).repeat(group)[:, None]  # (g*b, 1)
    for k_start in range(0, _visited_keys(end, m, offset, causal), block):
        k_end = min(k_start + block, m)
        scores = (rows @ k[:, :, k_start:k_end].transpose(-1, -2)).float()  # (B, Hkv, g*b, bk), base 2
        if causal and k_end - 1 > start + offset:  # the block straddles the diagonal
            key_pos = torch.arange(k_start, k_end, device=rows.device)[None, :]
            scores = scores.masked_fill(key_pos > query_pos + offset, float("-inf"))
        # Every row sees key 0 (offset >= 0), so row_max is finite after the first block.
        new_max = torch.maximum(row_max, scores.amax(dim=-1))
        rescale = torch.exp2(row_max - new_max)
        probs = torch.exp2(scores - new_max[..., None])
        row_sum = row_sum * rescale + probs.sum(dim=-1)
        acc = acc * rescale[..., None] + (probs.to(v.dtype) @ v[:, :, k_start:k_end]).float()
        row_max = new_max
    return (acc / row_sum[..., None]).to(rows.dtype)


def computed_pairs(n: int, m: int, causal: bool, block: int) -> int:
    """(query, key) pairs per head the impl computes: whole visited key blocks, masked
    ones in the blocks that straddle the diagonal included (what autograd keeps)."""
    pairs = 0
    for start in range(0, n, block):
        end = min(start + block, n)
        pairs += (end - start) * min(m, -(-_visited_keys(end, m, m - n, causal) // block) * block)
    return pairs


def _peak(p: dict) -> float:
    """Forward: the output blocks and their concatenation, and one tile's fp32 scores,
    shifted scores (a 16-bit case also the cast probabilities) and accumulator.
    Forward+backward: autograd keeps, per computed pair, the fp32 scores and
    probabilities (plus the 16-bit probabilities) and each tile's fp32 accumulator
    (4 * D / block_size bytes per pair), so it grows as N * M; plus the gradients, and
    the backward's working set of one tile, three fp32 gradients (of its probabilities,
    shifted and raw scores: measured 10 bytes a pair, the whole excess of a one-tile case)."""
    s = cost.sizes(p)
    b, hq, _, n, m, d = cost.shape(p)
    block = int(p.get("block_size", BLOCK))
    half = s.elem < 4
    tile = b * hq * min(n, block) * min(m, block)
    if s.backward:
        pairs = b * hq * computed_pairs(n, m, s.causal, block)
        return 2 * s.q * s.elem + s.gradients + pairs * (8 + 2 * half + 4 * d / block) + 3 * 4 * tile
    return 2 * s.q * s.elem + (2 + half) * tile * 4 + b * hq * min(n, block) * d * 4


# Exact: FLOPs are the useful ones of exact attention (halved for causal) and bytes the
# minimum, as for every exact impl (cost.py); the blocks it visits show in its time.
register("attention", "chunked", flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=_peak,
         params={"block_size": BLOCK})(chunked)
