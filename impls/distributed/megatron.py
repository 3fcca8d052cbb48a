"""Megatron-LM tensor parallelism (Shoeybi et al. 2019) for one transformer layer:
self-attention then an MLP, each with its residual.

Attention: the q, k, v projection is split by columns, H / P whole heads per rank, each
rank attends over its own heads, and the output projection is split by rows, so each rank
holds a partial sum of the block's output, completed by one all-reduce. MLP: the first
matrix split by columns (the GeLU is then local), the second by rows, one all-reduce. So
one layer's forward communicates twice, each time the activations (B, N, d_model), and the
input is replicated on every rank. No biases and no layer norms: they add no communication.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from impls.attention.reference import attention_fp64
from impls.distributed.blockwise import attend
from impls.distributed.comm import Comm
from impls.distributed.problem import Distributed, Shape
from impls.registry import register

FFN_MULT = 4  # d_ff = 4 d_model, as in the paper's GPT-2 layers
ALL_REDUCES_PER_LAYER = 2  # forward: one after attention, one after the MLP


class MegatronLayer(Distributed):
    """Megatron tensor parallelism: heads and MLP columns split, two all-reduces a layer."""

    def inputs(self, shape, generator, dtype, device):
        d, f = shape.d_model, FFN_MULT * shape.d_model

        def weight(rows, cols):  # scaled so activations stay O(1) through the layer
            return torch.randn(rows, cols, generator=generator, dtype=dtype, device=device) / math.sqrt(rows)

        x = torch.randn(shape.batch, shape.seq_len, d, generator=generator, dtype=dtype, device=device)
        return x, weight(d, 3 * d), weight(d, d), weight(d, f), weight(f, d)

    def shard(self, full, rank, shape):
        x, w_qkv, w_out, w_in, w_back = full
        heads = _slice(shape.heads, rank, shape.world)
        columns = torch.arange(shape.d_model).reshape(shape.heads, shape.head_dim)[heads].flatten()
        qkv_columns = torch.cat([columns + i * shape.d_model for i in range(3)])
        ffn = _slice(FFN_MULT * shape.d_model, rank, shape.world)
        return (x, w_qkv[:, qkv_columns].contiguous(), w_out[columns].contiguous(),
                w_in[:, ffn].contiguous(), w_back[ffn].contiguous())

    def part(self, full_out, rank, shape):
        return full_out  # every rank ends with the whole output

    def forward(self, comm, local, shape):
        x, w_qkv, w_out, w_in, w_back = local
        attended = _attention(x, w_qkv, shape, causal=shape.causal) @ w_out  # a partial sum over heads
        comm.all_reduce(attended)
        hidden = x + attended
        mlp = F.gelu(hidden @ w_in) @ w_back  # a partial sum over the MLP's columns
        comm.all_reduce(mlp)
        return hidden + mlp

    def reference(self, full64, shape):
        x, w_qkv, w_out, w_in, w_back = full64
        batch, n, d = x.shape
        q, k, v = (t.reshape(batch, n, shape.heads, shape.head_dim).transpose(1, 2) for t in (x @ w_qkv).split(d, dim=-1))
        hidden = x + attention_fp64(q, k, v, causal=shape.causal).transpose(1, 2).reshape(batch, n, d) @ w_out
        return hidden + F.gelu(hidden @ w_in) @ w_back

    def expected_bytes(self, shape, element_size):
        if shape.world == 1:
            return 0.0
        return float(ALL_REDUCES_PER_LAYER * shape.batch * shape.seq_len * shape.d_model * element_size)

    def flops(self, shape):
        d, tokens = shape.d_model, shape.batch * shape.seq_len
        matmuls = 2.0 * tokens * (3 * d * d + d * d + 2 * d * FFN_MULT * d)
        pairs = shape.seq_len * shape.seq_len * (0.5 if shape.causal else 1.0)
        return matmuls + 4.0 * shape.batch * shape.heads * shape.head_dim * pairs

    def refusal(self, shape):
        if shape.heads % shape.world:
            return f"heads={shape.heads} must divide among world_size={shape.world} ranks"
        return None


def _slice(total: int, rank: int, world: int) -> slice:
    size = total // world
    return slice(rank * size, (rank + 1) * size)


def _attention(x: torch.Tensor, w_qkv: torch.Tensor, shape: Shape, causal: bool) -> torch.Tensor:
    """This rank's heads: x (B, N, d) -> (B, N, H/P * D)."""
    batch, n, _ = x.shape
    q, k, v = (t.reshape(batch, n, -1, shape.head_dim).transpose(1, 2) for t in (x @ w_qkv).chunk(3, dim=-1))
    out, _ = attend(q, k, v, causal=causal, scale=1.0 / math.sqrt(shape.head_dim))
    return out.to(x.dtype).transpose(1, 2).reshape(batch, n, -1)


register("distributed", "megatron_layer", precisions=("fp32", "bf16"), backward=False)(MegatronLayer())
