"""Analytic FLOP and byte models for attention, from a case's params.

Conventions (as in the FlashAttention papers): a forward pass costs
4*B*Hq*D FLOPs per attended (query, key) pair (two matmuls, 2 FLOPs per
multiply-add); backward costs 2.5x forward. Causal counts only the pairs
actually attended (about half). Bytes are the minimum traffic: read q, k, v
once and write o once (plus the gradients for backward).
"""
from __future__ import annotations

ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
BACKWARD_FLOP_FACTOR = 2.5


def attended_pairs(seq_len: int, kv_len: int, causal: bool) -> int:
    """Number of (query, key) pairs attended per head, bottom-right causal."""
    if not causal:
        return seq_len * kv_len
    offset = kv_len - seq_len  # query i sees keys 0..i+offset, never more than kv_len
    return seq_len * offset + seq_len * (seq_len + 1) // 2


def shape(p: dict) -> tuple[int, int, int, int, int, int]:
    """(B, Hq, Hkv, N, M, D) from case params."""
    n = int(p["seq_len"])
    heads = int(p["heads"])
    return (int(p["batch"]), heads, int(p.get("kv_heads") or heads), n,
            int(p.get("kv_len") or n), int(p["head_dim"]))


def flops(p: dict, pairs: int | None = None) -> float:
    """FLOPs of one call; `pairs` overrides the attended pairs per head (sparse impls)."""
    b, hq, _, n, m, d = shape(p)
    pairs = attended_pairs(n, m, bool(p.get("causal"))) if pairs is None else pairs
    forward = 4.0 * b * hq * d * pairs
    return forward * (1 + BACKWARD_FLOP_FACTOR) if p.get("direction") == "fwd_bwd" else forward


def bytes_moved(p: dict) -> float:
    """Minimum bytes read and written by one call."""
    b, hq, hkv, n, m, d = shape(p)
    elem = ELEMENT_BYTES.get(p.get("precision", "fp32"), 4)
    q_and_o = 2 * b * hq * n * d
    k_and_v = 2 * b * hkv * m * d
    forward = (q_and_o + k_and_v) * elem
    # backward reads q, k, v, o, do and writes dq, dk, dv
    return forward + (2 * q_and_o + 2 * k_and_v) * elem if p.get("direction") == "fwd_bwd" else forward


def naive_peak_bytes(p: dict) -> float:
    """Expected extra memory of the naive impl: the fp32 scores and probabilities."""
    b, hq, _, n, m, _ = shape(p)
    return 2 * b * hq * n * m * 4


def flash_peak_bytes(p: dict) -> float:
    """Expected extra memory of a fused (FlashAttention-style) impl: the output and
    an fp32 log-sum-exp per query row; backward adds dq, dk, dv and fp32 row sums
    of dO * O. O(N), never O(N * M)."""
    b, hq, hkv, n, m, d = shape(p)
    elem = ELEMENT_BYTES.get(p.get("precision", "fp32"), 4)
    forward = b * hq * n * (d * elem + 4)
    if p.get("direction") != "fwd_bwd":
        return forward
    return 2 * forward + 2 * b * hkv * m * d * elem
