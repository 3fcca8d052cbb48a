"""Outer-product mean (Algorithm 10): the MSA's update of the pair representation.

o_ij = mean_s (a_si ⊗ b_sj), flattened to c*c channels and projected to c_z. The
(N_res, N_res, c*c) intermediate is the op's memory; chunking the rows i bounds
it to (chunk, N_res, c*c).
"""
from __future__ import annotations

import torch
from torch import nn

from impls.evoformer import cost
from impls.evoformer.chunking import chunk_apply
from impls.evoformer.dims import EvoformerDims
from impls.registry import register


@register("evoformer", "outer_product_mean", flops=cost.outer_product_mean, reads=("m",), algorithm=10)
@register("evoformer", "outer_product_mean_chunked", params={"chunk_size": 16},
          reference="outer_product_mean", flops=cost.outer_product_mean, reads=("m",), algorithm=10)
class OuterProductMean(nn.Module):
    """Outer-product mean (AlphaFold 2 SI Algorithm 10); chunked over residues i."""

    def __init__(self, dims: EvoformerDims, chunk_size: int | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.norm_m = nn.LayerNorm(dims.c_m)  # line 1
        self.left = nn.Linear(dims.c_m, dims.hidden)  # line 2: a
        self.right = nn.Linear(dims.c_m, dims.hidden)  # line 2: b
        self.out = nn.Linear(dims.hidden * dims.hidden, dims.c_z)  # line 4

    def forward(self, m: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """m (N_seq, N_res, c_m) -> update of z (N_res, N_res, c_z); z is not read."""
        m = self.norm_m(m)
        right = self.right(m)  # (S, N_res, c)
        return chunk_apply(lambda left: self._pairs(left, right), [self.left(m)], dim=1,
                           chunk_size=self.chunk_size, out_dim=0)

    def _pairs(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """left (S, I, c) for residues i, right (S, N_res, c) -> (I, N_res, c_z)."""
        seqs, rows, c = left.shape
        # line 3: sum_s a_si b_sj as one matmul over s, then the mean
        outer = left.reshape(seqs, rows * c).t() @ right.reshape(seqs, -1)  # (I*c, N_res*c)
        outer = outer.view(rows, c, -1, c).permute(0, 2, 1, 3) / seqs  # (I, N_res, c, c)
        return self.out(outer.reshape(rows, outer.shape[1], c * c))
