"""Ring attention (Liu et al. 2023): each rank keeps its queries and passes its key/value
block around the ring, computing on the block it holds while the next one is in flight.

Rank r starts with its own K/V block; at step t it holds rank (r - t) mod P's block, sends
it on to rank r + 1 and receives the next from rank r - 1, the transfer started before the
block's attention is computed and waited on after, so communication overlaps computation.
The partial results merge by their log-sum-exp (impls.distributed.blockwise), exactly.

Causal: with the zigzag layout (impls.distributed.layout) every rank computes the same
number of (query, key) pairs at every step. Chunk pairs are classed by chunk index: a key
chunk before the query chunk is attended whole, the same chunk causally, a later one not
at all. Per rank the memory held is its q, k, v part, one K/V block in flight and the score
tiles of blockwise attention: O(N / P) for a fixed N.
"""
from __future__ import annotations

import torch

from impls.attention.scale import default_scale
from impls.distributed import layout
from impls.distributed.blockwise import attend, merge
from impls.distributed.problem import SequenceAttention, Shape
from impls.registry import register


class RingAttention(SequenceAttention):
    """Ring attention: K/V blocks passed around the ring, overlapped with blockwise attention."""

    def shard(self, full, rank, shape, layout: layout.Layout = "zigzag"):
        return tuple(_shard(t, rank, shape, layout) for t in full)

    def part(self, full_out, rank, shape, layout: layout.Layout = "zigzag"):
        return _shard(full_out, rank, shape, layout)

    def forward(self, comm, local, shape, layout: layout.Layout = "zigzag"):
        q, k, v = local
        scale = default_scale(q, None)
        mine = layout_chunks(comm.rank, shape, layout)
        q_chunks = q.chunk(len(mine), dim=2)
        accumulate = torch.promote_types(q.dtype, torch.float32)
        acc = [(torch.zeros(c.shape, dtype=accumulate, device=c.device),
                torch.full(c.shape[:3], float("-inf"), dtype=accumulate, device=c.device)) for c in q_chunks]
        kv = torch.stack((k, v))  # (2, B, H, n, D): one message per step
        for step in range(comm.world):
            requests, incoming = [], None
            if step < comm.world - 1:  # start the next block's transfer before computing on this one
                incoming = torch.empty_like(kv)
                requests = comm.exchange(kv, (comm.rank + 1) % comm.world, incoming, (comm.rank - 1) % comm.world)
            holder = (comm.rank - step) % comm.world
            acc = _attend_block(q_chunks, mine, kv, layout_chunks(holder, shape, layout), acc, shape.causal, scale)
            for request in requests:
                request.wait()
            if incoming is not None:
                kv = incoming
        return torch.cat([out for out, _ in acc], dim=2).to(q.dtype)

    def expected_bytes(self, shape, element_size, layout: layout.Layout = "zigzag"):
        block = shape.batch * shape.heads * (shape.seq_len // shape.world) * shape.head_dim
        return float(2 * block * element_size * (shape.world - 1))  # K and V, P - 1 steps

    def refusal(self, shape, layout: layout.Layout = "zigzag"):
        return _layout_refusal(shape, layout)


def layout_chunks(rank: int, shape: Shape, chosen: layout.Layout) -> list[int]:
    return layout.chunks_of(rank, shape.world, chosen)


def _shard(t: torch.Tensor, rank: int, shape: Shape, chosen: layout.Layout) -> torch.Tensor:
    return layout.shard(t, rank, shape.world, chosen)


def _layout_refusal(shape: Shape, chosen: str) -> str | None:
    if chosen not in layout.LAYOUTS:
        return f"layout={chosen!r} is not one of {', '.join(layout.LAYOUTS)}"
    return layout.refusal(shape.seq_len, shape.world, chosen)


def _attend_block(q_chunks, q_ids, kv, k_ids, acc, causal: bool, scale: float):
    """Merge the attention of each query chunk to each key chunk of the block held into `acc`."""
    k_chunks, v_chunks = kv[0].chunk(len(k_ids), dim=2), kv[1].chunk(len(k_ids), dim=2)
    merged = []
    for q_chunk, q_id, (out, lse) in zip(q_chunks, q_ids, acc):
        for k_chunk, v_chunk, k_id in zip(k_chunks, v_chunks, k_ids):
            if causal and k_id > q_id:
                continue  # wholly in this query chunk's future
            block_out, block_lse = attend(q_chunk, k_chunk, v_chunk, causal=causal and k_id == q_id, scale=scale)
            out, lse = merge(out, lse, block_out, block_lse)
        merged.append((out, lse))
    return merged


register("distributed", "ring_attention", precisions=("fp32", "bf16"), backward=False,
         params={"layout": "zigzag"})(RingAttention())
