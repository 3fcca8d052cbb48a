"""MSA row attention with pair bias (Algorithm 7) and MSA column attention (Algorithm 8).

Row attention: each MSA row s attends over residues, with a bias b_ij^h from the
pair representation shared by every row; rows are chunked. Column attention:
each residue column i attends over the sequences; columns are chunked.
"""
from __future__ import annotations

import torch
from torch import nn

from impls.evoformer import cost
from impls.evoformer.dims import EvoformerDims
from impls.evoformer.gated_attention import GatedAttention
from impls.registry import register

_CHUNKED = {"chunk_size": 16}


@register("evoformer", "row_attention", flops=cost.row_attention, reads=("m", "z"), algorithm=7)
@register("evoformer", "row_attention_chunked", params=_CHUNKED, reference="row_attention",
          flops=cost.row_attention, reads=("m", "z"), algorithm=7)
class MSARowAttentionWithPairBias(nn.Module):
    """MSA row attention with pair bias (AlphaFold 2 SI Algorithm 7); chunked over rows s."""

    def __init__(self, dims: EvoformerDims, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.norm_m = nn.LayerNorm(dims.c_m)  # line 1
        self.norm_z = nn.LayerNorm(dims.c_z)  # line 3
        self.pair_bias = nn.Linear(dims.c_z, dims.heads, bias=False)  # line 3
        self.attention = GatedAttention(dims.c_m, dims.heads, dims.head_dim)  # lines 2, 4-7

    def forward(self, m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """m (N_seq, N_res, c_m), z (N_res, N_res, c_z) -> update of m."""
        bias = self.pair_bias(self.norm_z(z)).permute(2, 0, 1)  # (H, N_res, N_res): b_ij^h
        return self.attention(self.norm_m(m), bias, self.chunk_size)


@register("evoformer", "column_attention", flops=cost.column_attention, reads=("m",), algorithm=8)
@register("evoformer", "column_attention_chunked", params=_CHUNKED, reference="column_attention",
          flops=cost.column_attention, reads=("m",), algorithm=8)
class MSAColumnAttention(nn.Module):
    """MSA column attention (AlphaFold 2 SI Algorithm 8); chunked over columns i."""

    def __init__(self, dims: EvoformerDims, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.norm_m = nn.LayerNorm(dims.c_m)  # line 1
        self.attention = GatedAttention(dims.c_m, dims.heads, dims.head_dim)  # lines 2-6

    def forward(self, m: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """m (N_seq, N_res, c_m) -> update of m; z is not read."""
        columns = self.norm_m(m).transpose(0, 1)  # (N_res, N_seq, c_m): a column attends over s
        return self.attention(columns, None, self.chunk_size).transpose(0, 1)
