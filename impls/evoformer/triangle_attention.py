"""Triangle self-attention around the starting node (Algorithm 13) and the ending node
(Algorithm 14).

Starting node: edge ij attends over the edges ik leaving i, biased by b_jk.
Ending node: edge ij attends over the edges kj entering j, biased by b_ki; it is
the starting-node form on the transposed pair representation. The rows i (j for
the ending node) are independent and are chunked.
"""
from __future__ import annotations

import torch
from torch import nn

from impls.evoformer import cost
from impls.evoformer.dims import EvoformerDims
from impls.evoformer.gated_attention import GatedAttention
from impls.registry import register

_CHUNKED = {"chunk_size": 16}


class TriangleAttention(nn.Module):
    """Both nodes share this: LayerNorm, a bias per head from the same normalised edges,
    gated attention along each row of z (of z^T for the ending node)."""

    ending_node = False

    def __init__(self, dims: EvoformerDims, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.norm_z = nn.LayerNorm(dims.c_z)  # line 1
        self.pair_bias = nn.Linear(dims.c_z, dims.heads, bias=False)  # line 3
        self.attention = GatedAttention(dims.c_z, dims.heads, dims.head_dim)  # lines 2, 4-7

    def forward(self, m: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
        """z (N_res, N_res, c_z) -> update of z; m is not read."""
        z = self.norm_z(z.transpose(0, 1) if self.ending_node else z)
        bias = self.pair_bias(z).permute(2, 0, 1)  # (H, N_res, N_res): b_jk of the (transposed) edges
        out = self.attention(z, bias, self.chunk_size)
        return out.transpose(0, 1) if self.ending_node else out


@register("evoformer", "triangle_attention_starting", flops=cost.triangle_attention, reads=("z",),
          algorithm=13)
@register("evoformer", "triangle_attention_starting_chunked", params=_CHUNKED,
          reference="triangle_attention_starting", flops=cost.triangle_attention, reads=("z",), algorithm=13)
class TriangleAttentionStartingNode(TriangleAttention):
    """Triangle attention around the starting node (AlphaFold 2 SI Algorithm 13); chunked over i."""


@register("evoformer", "triangle_attention_ending", flops=cost.triangle_attention, reads=("z",),
          algorithm=14)
@register("evoformer", "triangle_attention_ending_chunked", params=_CHUNKED,
          reference="triangle_attention_ending", flops=cost.triangle_attention, reads=("z",), algorithm=14)
class TriangleAttentionEndingNode(TriangleAttention):
    """Triangle attention around the ending node (AlphaFold 2 SI Algorithm 14); chunked over j."""

    ending_node = True
