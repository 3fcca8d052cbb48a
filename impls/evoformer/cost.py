"""Analytic forward FLOPs of the Evoformer ops (matmuls only, 2 per multiply-add).

Each takes the case params: msa_depth (N_seq), residues (N_res), c_m, c_z, heads,
head_dim, hidden. Normalisation, softmax and gating are left out (a few percent).
"""
from __future__ import annotations

from typing import Any


def _attention(batch: int, length: int, channels: int, heads: int, head_dim: int) -> float:
    """Gated attention over `batch` rows of `length`: q, k, v, gate and out projections
    plus q k^T and a v."""
    projections = 2 * batch * length * channels * 5 * heads * head_dim
    return projections + 4 * batch * heads * length * length * head_dim


def row_attention(p: dict[str, Any]) -> float:
    seqs, res = p["msa_depth"], p["residues"]
    bias = 2 * res * res * p["c_z"] * p["heads"]
    return _attention(seqs, res, p["c_m"], p["heads"], p["head_dim"]) + bias


def column_attention(p: dict[str, Any]) -> float:
    return _attention(p["residues"], p["msa_depth"], p["c_m"], p["heads"], p["head_dim"])


def triangle_attention(p: dict[str, Any]) -> float:
    res = p["residues"]
    bias = 2 * res * res * p["c_z"] * p["heads"]
    return _attention(res, res, p["c_z"], p["heads"], p["head_dim"]) + bias


def outer_product_mean(p: dict[str, Any]) -> float:
    seqs, res, c = p["msa_depth"], p["residues"], p["hidden"]
    return 2 * seqs * res * p["c_m"] * 2 * c + 2 * seqs * res * res * c * c + 2 * res * res * c * c * p["c_z"]


def triangle_multiplication(p: dict[str, Any]) -> float:
    res, c, c_z = p["residues"], p["hidden"], p["c_z"]
    projections = 2 * res * res * c_z * (4 * c + c_z)  # a, b and their gates; g
    return projections + 2 * res ** 3 * c + 2 * res * res * c * c_z
