"""Triangle multiplicative updates, outgoing (Algorithm 11) and incoming (Algorithm 12) edges.

Outgoing: x_ij = sum_k a_ik ⊙ b_jk (edges leaving i and j); incoming: x_ij = sum_k
a_ki ⊙ b_kj (edges entering i and j). Every row i of the update needs all of b but
only its own edges of a and g, so b is projected once and the rows are chunked:
each chunk projects its a and g, sums over k, and normalises, projects and gates
its rows only.
"""
from __future__ import annotations

import torch
from torch import nn

from impls.evoformer import cost
from impls.evoformer.chunking import chunk_apply
from impls.evoformer.dims import EvoformerDims
from impls.registry import register

_CHUNKED = {"chunk_size": 16}


class TriangleMultiplication(nn.Module):
    incoming = False

    def __init__(self, dims: EvoformerDims, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.norm_in = nn.LayerNorm(dims.c_z)  # line 1
        self.left, self.left_gate = nn.Linear(dims.c_z, dims.hidden), nn.Linear(dims.c_z, dims.hidden)  # line 2: a
        self.right, self.right_gate = nn.Linear(dims.c_z, dims.hidden), nn.Linear(dims.c_z, dims.hidden)  # line 2: b
        self.gate = nn.Linear(dims.c_z, dims.c_z)  # line 3
        self.norm_out = nn.LayerNorm(dims.hidden)  # line 4
        self.out = nn.Linear(dims.hidden, dims.c_z)  # line 4

    def forward(self, m: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """z (N_res, N_res, c_z) -> update of z; m is not read."""
        z = self.norm_in(z)
        # b for every k and j, channels first as (c, k, j): b_jk (outgoing) or b_kj (incoming)
        b = self._project(self.right, self.right_gate, z).permute(2, 0, 1)
        b = b if self.incoming else b.transpose(1, 2)
        # row i of the update reads a_i. (outgoing: row i of z) or a_.i (incoming: column i)
        # and g_i. (row i): each chunk projects only its own rows of a and g
        return chunk_apply(lambda z_a, z_g: self._rows(z_a, z_g, b), [z, z], dim=(1 if self.incoming else 0, 0),
                           chunk_size=self.chunk_size)

    @staticmethod
    def _project(value: nn.Linear, gate: nn.Linear, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(gate(z)) * value(z)  # line 2

    def _rows(self, z_a: torch.Tensor, z_g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """z_a: the normalised edges a is projected from for rows I; z_g (I, N_res, c_z);
        b (c, k, j) -> rows I of the update (I, N_res, c_z)."""
        a = self._project(self.left, self.left_gate, z_a)  # (I, k, c) outgoing; (k, I, c) incoming
        a = a.permute(2, 1, 0) if self.incoming else a.permute(2, 0, 1)  # (c, I, k)
        x = (a @ b).permute(1, 2, 0)  # (I, j, c): sum over k per channel
        g = torch.sigmoid(self.gate(z_g))  # line 3
        return g * self.out(self.norm_out(x))  # line 4


@register("evoformer", "triangle_mult_outgoing", flops=cost.triangle_multiplication, reads=("z",),
          algorithm=11)
@register("evoformer", "triangle_mult_outgoing_chunked", params=_CHUNKED, reference="triangle_mult_outgoing",
          flops=cost.triangle_multiplication, reads=("z",), algorithm=11)
class TriangleMultiplicationOutgoing(TriangleMultiplication):
    """Triangle multiplicative update, outgoing edges (AlphaFold 2 SI Algorithm 11); chunked over i."""


@register("evoformer", "triangle_mult_incoming", flops=cost.triangle_multiplication, reads=("z",),
          algorithm=12)
@register("evoformer", "triangle_mult_incoming_chunked", params=_CHUNKED, reference="triangle_mult_incoming",
          flops=cost.triangle_multiplication, reads=("z",), algorithm=12)
class TriangleMultiplicationIncoming(TriangleMultiplication):
    """Triangle multiplicative update, incoming edges (AlphaFold 2 SI Algorithm 12); chunked over i."""

    incoming = True
