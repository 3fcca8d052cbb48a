"""Which part of the sequence each rank holds.

The sequence is cut into equal chunks and each rank holds some of them, in order:
  contiguous: P chunks, rank r holds chunk r;
  zigzag:     2P chunks, rank r holds chunks r and 2P-1-r, an early and a late one, so under
              a causal mask every rank has the same number of (query, key) pairs to compute
              (with contiguous chunks the last rank computes P times the first's).
"""
from __future__ import annotations

from typing import Literal

import torch

Layout = Literal["contiguous", "zigzag"]
LAYOUTS = ("contiguous", "zigzag")


def chunk_count(layout: Layout, world: int) -> int:
    return 2 * world if layout == "zigzag" else world


def chunks_of(rank: int, world: int, layout: Layout) -> list[int]:
    """The chunk indices rank `rank` holds, in sequence order."""
    return [rank, 2 * world - 1 - rank] if layout == "zigzag" else [rank]


def refusal(seq_len: int, world: int, layout: Layout) -> str | None:
    chunks = chunk_count(layout, world)
    if seq_len % chunks:
        return f"seq_len={seq_len} must split into {chunks} equal chunks ({layout} layout, world_size={world})"
    return None


def shard(x: torch.Tensor, rank: int, world: int, layout: Layout, dim: int = 2) -> torch.Tensor:
    """The part of `x` (sequence along `dim`) rank `rank` holds, its chunks concatenated."""
    pieces = x.chunk(chunk_count(layout, world), dim=dim)
    return torch.cat([pieces[i] for i in chunks_of(rank, world, layout)], dim=dim).contiguous()
