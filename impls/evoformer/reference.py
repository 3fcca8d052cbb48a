"""The Evoformer ops in float64, line by line as the algorithms write them: the
specification every impl in the `evoformer` family must equal.

Each function reads the weights of a built op (so both compute with the same
numbers) and takes m (N_seq, N_res, c_m) and z (N_res, N_res, c_z); indices
follow the Supplementary Information: s sequences, i, j, k residues, h heads.
Attention is written out (einsum, softmax) rather than called, and no row is
ever chunked.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from impls.evoformer.gated_attention import GatedAttention


def _w(layer: nn.Module, name: str = "weight") -> torch.Tensor | None:
    tensor = getattr(layer, name)
    return None if tensor is None else tensor.detach().double()


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, _w(layer), _w(layer, "bias"))


def _layer_norm(layer: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + layer.eps) * _w(layer) + _w(layer, "bias")


def _heads(attention: GatedAttention, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """q, k, v, g per head: (..., N, H, c) each; g through its sigmoid."""
    shape = (*x.shape[:-1], attention.heads, attention.head_dim)
    q, k, v = _linear(attention.qkv, x).chunk(3, dim=-1)
    g = torch.sigmoid(_linear(attention.gate, x))
    return tuple(t.reshape(shape) for t in (q, k, v, g))


def _output(attention: GatedAttention, o: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Gate the heads and project their concatenation (the last two lines)."""
    gated = g * o
    return _linear(attention.out, gated.reshape(*gated.shape[:-2], -1))


def row_attention(op: nn.Module, m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Algorithm 7, MSARowAttentionWithPairBias."""
    m, z = m.double(), z.double()
    m = _layer_norm(op.norm_m, m)  # 1
    q, k, v, g = _heads(op.attention, m)  # 2, 4: (s, i, h, c)
    b = F.linear(_layer_norm(op.norm_z, z), _w(op.pair_bias))  # 3: b_ij^h
    logits = torch.einsum("sihc,sjhc->sijh", q, k) / math.sqrt(q.shape[-1]) + b  # 5
    a = torch.softmax(logits, dim=2)  # over j
    o = torch.einsum("sijh,sjhc->sihc", a, v)  # 6
    return _output(op.attention, o, g)  # 6, 7


def column_attention(op: nn.Module, m: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """Algorithm 8, MSAColumnAttention."""
    m = _layer_norm(op.norm_m, m.double())  # 1
    q, k, v, g = _heads(op.attention, m)  # 2, 3: (s, i, h, c)
    logits = torch.einsum("sihc,tihc->stih", q, k) / math.sqrt(q.shape[-1])  # 4
    a = torch.softmax(logits, dim=1)  # over t
    o = torch.einsum("stih,tihc->sihc", a, v)  # 5
    return _output(op.attention, o, g)  # 5, 6


def _triangle_attention(op: nn.Module, z: torch.Tensor, ending: bool) -> torch.Tensor:
    z = _layer_norm(op.norm_z, z.double())  # 1
    q, k, v, g = _heads(op.attention, z)  # 2, 4: (i, j, h, c)
    b = F.linear(z, _w(op.pair_bias))  # 3: b_ij^h
    scale = 1 / math.sqrt(q.shape[-1])
    if ending:  # Algorithm 14: a_ijk = softmax_k(q_ij k_kj / sqrt(c) + b_ki); o_ij = g_ij sum_k a_ijk v_kj
        logits = torch.einsum("ijhc,kjhc->ijkh", q, k) * scale + b.permute(1, 0, 2).unsqueeze(1)
        o = torch.einsum("ijkh,kjhc->ijhc", torch.softmax(logits, dim=2), v)
    else:  # Algorithm 13: a_ijk = softmax_k(q_ij k_ik / sqrt(c) + b_jk); o_ij = g_ij sum_k a_ijk v_ik
        logits = torch.einsum("ijhc,ikhc->ijkh", q, k) * scale + b.unsqueeze(0)
        o = torch.einsum("ijkh,ikhc->ijhc", torch.softmax(logits, dim=2), v)
    return _output(op.attention, o, g)


def triangle_attention_starting(op: nn.Module, m: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    """Algorithm 13, TriangleAttentionStartingNode."""
    return _triangle_attention(op, z, ending=False)


def triangle_attention_ending(op: nn.Module, m: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    """Algorithm 14, TriangleAttentionEndingNode."""
    return _triangle_attention(op, z, ending=True)


def outer_product_mean(op: nn.Module, m: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """Algorithm 10, OuterProductMean."""
    m = _layer_norm(op.norm_m, m.double())  # 1
    a, b = _linear(op.left, m), _linear(op.right, m)  # 2
    o = torch.einsum("sic,sjd->ijcd", a, b) / m.shape[0]  # 3: mean over s of a_si ⊗ b_sj
    return _linear(op.out, o.flatten(-2))  # 3 (flatten), 4


def _triangle_multiplication(op: nn.Module, z: torch.Tensor, incoming: bool) -> torch.Tensor:
    z = _layer_norm(op.norm_in, z.double())  # 1
    a = torch.sigmoid(_linear(op.left_gate, z)) * _linear(op.left, z)  # 2
    b = torch.sigmoid(_linear(op.right_gate, z)) * _linear(op.right, z)
    g = torch.sigmoid(_linear(op.gate, z))  # 3
    equation = "kic,kjc->ijc" if incoming else "ikc,jkc->ijc"  # Algorithm 12 : Algorithm 11
    return g * _linear(op.out, _layer_norm(op.norm_out, torch.einsum(equation, a, b)))  # 4


def triangle_mult_outgoing(op: nn.Module, m: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    """Algorithm 11, TriangleMultiplicationOutgoing."""
    return _triangle_multiplication(op, z, incoming=False)


def triangle_mult_incoming(op: nn.Module, m: torch.Tensor | None, z: torch.Tensor) -> torch.Tensor:
    """Algorithm 12, TriangleMultiplicationIncoming."""
    return _triangle_multiplication(op, z, incoming=True)


Reference = Callable[[nn.Module, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]

# op name (an impl's name without _chunked) -> its specification
REFERENCES: dict[str, Reference] = {
    "row_attention": row_attention,
    "column_attention": column_attention,
    "outer_product_mean": outer_product_mean,
    "triangle_mult_outgoing": triangle_mult_outgoing,
    "triangle_mult_incoming": triangle_mult_incoming,
    "triangle_attention_starting": triangle_attention_starting,
    "triangle_attention_ending": triangle_attention_ending,
}


def reference_for(impl_name: str) -> Reference:
    """The specification of a registered evoformer impl (`<op>` or `<op>_chunked`)."""
    return REFERENCES[impl_name.removesuffix("_chunked")]
