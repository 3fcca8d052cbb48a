"""All-to-all sequence parallelism (DeepSpeed-Ulysses, Jacobs et al. 2023).

Each rank holds a contiguous slice of the sequence for every head. One all-to-all per
input turns that into the whole sequence for H / P heads, attention runs locally on those
heads, and one all-to-all turns the output back into the rank's slice of the sequence for
every head. Per call a rank sends 4 (P - 1) / P of its q, k, v, o slices; the heads must
divide among the ranks.
"""
from __future__ import annotations

import torch

from impls.attention.scale import default_scale
from impls.distributed import layout
from impls.distributed.blockwise import attend
from impls.distributed.comm import Comm
from impls.distributed.problem import SequenceAttention
from impls.registry import register


class UlyssesAttention(SequenceAttention):
    """Ulysses: all-to-all from sequence to head sharding, local attention, and back."""

    def shard(self, full, rank, shape):
        return tuple(layout.shard(t, rank, shape.world, "contiguous") for t in full)

    def part(self, full_out, rank, shape):
        return layout.shard(full_out, rank, shape.world, "contiguous")

    def forward(self, comm, local, shape):
        q, k, v = (_sequence_to_heads(t, comm) for t in local)  # (B, H/P, N, D) each
        out, _ = attend(q, k, v, causal=shape.causal, scale=default_scale(q, None))
        return _heads_to_sequence(out.to(q.dtype), comm)

    def expected_bytes(self, shape, element_size):
        slice_elements = shape.batch * shape.heads * (shape.seq_len // shape.world) * shape.head_dim
        return 4.0 * slice_elements * element_size * (shape.world - 1) / shape.world

    def refusal(self, shape):
        if shape.heads % shape.world:
            return f"heads={shape.heads} must divide among world_size={shape.world} ranks"
        return layout.refusal(shape.seq_len, shape.world, "contiguous")


def _sequence_to_heads(x: torch.Tensor, comm: Comm) -> torch.Tensor:
    """(B, H, n, D), this rank's slice of the sequence -> (B, H/P, P*n, D), its heads."""
    if comm.world == 1:
        return x
    batch, heads, n, dim = x.shape
    pieces = x.reshape(batch, comm.world, heads // comm.world, n, dim).transpose(0, 1).contiguous()  # piece g -> rank g
    received = torch.empty_like(pieces)  # received[g]: rank g's slice of the sequence, for my heads
    comm.all_to_all(received, pieces)
    return received.permute(1, 2, 0, 3, 4).reshape(batch, heads // comm.world, comm.world * n, dim)


def _heads_to_sequence(y: torch.Tensor, comm: Comm) -> torch.Tensor:
    """(B, H/P, N, D), this rank's heads -> (B, H, N/P, D), its slice of the sequence."""
    if comm.world == 1:
        return y
    batch, local_heads, length, dim = y.shape
    n = length // comm.world
    pieces = y.reshape(batch, local_heads, comm.world, n, dim).permute(2, 0, 1, 3, 4).contiguous()  # slice g -> rank g
    received = torch.empty_like(pieces)  # received[g]: rank g's heads, for my slice
    comm.all_to_all(received, pieces)
    return received.transpose(0, 1).reshape(batch, comm.world * local_heads, n, dim)


register("distributed", "ulysses_attention", precisions=("fp32", "bf16"), backward=False)(UlyssesAttention())
