"""What a distributed impl is: a problem (its full inputs and single-process exact result)
and a way to split it over ranks.

Every rank draws the same full inputs from the same seed and keeps its own part, so no
rank ever needs another's inputs, and the part of the exact result a rank must produce is
cut from the full fp64 reference the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impls.attention.reference import attention_fp64
from impls.distributed.comm import Comm


@dataclass(frozen=True)
class Shape:
    """One call's sizes: batch, heads, seq_len (N), head_dim (D) and the ranks (world)."""

    batch: int
    heads: int
    seq_len: int
    head_dim: int
    causal: bool
    world: int

    @property
    def d_model(self) -> int:
        return self.heads * self.head_dim


class Distributed:
    """The interface every distributed impl keeps (registered as an instance)."""

    def inputs(self, shape: Shape, generator: torch.Generator, dtype: torch.dtype,
               device: str) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def shard(self, full: tuple[torch.Tensor, ...], rank: int, shape: Shape, **params) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def forward(self, comm: Comm, local: tuple[torch.Tensor, ...], shape: Shape, **params) -> torch.Tensor:
        raise NotImplementedError

    def reference(self, full64: tuple[torch.Tensor, ...], shape: Shape) -> torch.Tensor:
        """The single-process exact result, from the inputs in float64."""
        raise NotImplementedError

    def part(self, full_out: torch.Tensor, rank: int, shape: Shape, **params) -> torch.Tensor:
        """The part of the full result rank `rank` must return."""
        raise NotImplementedError

    def expected_bytes(self, shape: Shape, element_size: int, **params) -> float:
        """Bytes one rank hands to communication in one call, as the algorithm derives them."""
        raise NotImplementedError

    def flops(self, shape: Shape) -> float:
        """FLOPs of one call over all ranks (the useful work, as the op workload counts it)."""
        raise NotImplementedError

    def refusal(self, shape: Shape, **params) -> str | None:
        return None


class SequenceAttention(Distributed):
    """Attention over q, k, v (B, H, N, D), the sequence split across ranks."""

    def inputs(self, shape, generator, dtype, device):
        size = (shape.batch, shape.heads, shape.seq_len, shape.head_dim)
        return tuple(torch.randn(size, generator=generator, dtype=dtype, device=device) for _ in range(3))

    def reference(self, full64, shape):
        return attention_fp64(*full64, causal=shape.causal)

    def flops(self, shape):
        pairs = shape.seq_len * shape.seq_len * (0.5 if shape.causal else 1.0)
        return 4.0 * shape.batch * shape.heads * shape.head_dim * pairs
