"""Analytic FLOP, byte and peak-memory models for attention, from a case's params.

FLOPs (as in the FlashAttention papers): a forward pass costs 4*B*Hq*D FLOPs
per (query, key) pair (two matmuls, 2 FLOPs per multiply-add); backward costs
2.5x forward. Which pairs count:
  - dense impls (every exact impl, int8, and the fp64 references, masked ones
    included) count the useful pairs of exact attention, N*M, or the causal
    triangle when causal (about half): 4*B*H*N*M*D forward, halved for causal,
    whatever the kernel computes and then masks (`flops`);
  - impls that skip work by design (block-sparse, windowed, low-rank) count the
    pairs they really compute, masked ones inside a computed block included
    (`flops(p, pairs=...)` with their own count), so their TFLOP/s is the rate
    of the work done.
Bytes are the minimum traffic: read q, k, v once and write o once (backward:
also read o and dO, write dq, dk, dv), at the element size the impl really
gets: the input dtype on the case's device, which for int8 cases is fp32 on the
CPU and fp16 on a GPU (the impl quantises internally). Low-rank impls add what
they read besides (linformer's projections).

Peak memory models (`*_peak_bytes`) are the extra bytes one call allocates at
its peak over its inputs, output and gradients (fwd_bwd) included, as the op
workload measures it.
"""
from __future__ import annotations

from dataclasses import dataclass

from impls.precision import input_dtype

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


def element_bytes(p: dict) -> int:
    """Bytes per element of q, k, v and o as the impl receives them on the case's device."""
    return input_dtype(p.get("precision", "fp32"), p.get("device", "cpu")).itemsize


def flops(p: dict, pairs: int | None = None) -> float:
    """FLOPs of one call; `pairs` overrides the attended pairs per head (sparse impls)."""
    b, hq, _, n, m, d = shape(p)
    pairs = attended_pairs(n, m, bool(p.get("causal"))) if pairs is None else pairs
    forward = 4.0 * b * hq * d * pairs
    return forward * (1 + BACKWARD_FLOP_FACTOR) if p.get("direction") == "fwd_bwd" else forward


def bytes_moved(p: dict) -> float:
    """Minimum bytes read and written by one call."""
    b, hq, hkv, n, m, d = shape(p)
    elem = element_bytes(p)
    q_and_o = 2 * b * hq * n * d
    k_and_v = 2 * b * hkv * m * d
    forward = (q_and_o + k_and_v) * elem
    # backward reads q, k, v, o, do and writes dq, dk, dv
    return forward + (2 * q_and_o + 2 * k_and_v) * elem if p.get("direction") == "fwd_bwd" else forward


@dataclass(frozen=True)
class Sizes:
    """Element counts of a case, for the peak-memory models (all heads, whole batch)."""
    scores: int  # B*Hq*N*M, one score matrix
    q: int  # B*Hq*N*D: q, o, dq, dO
    kv: int  # B*Hkv*M*D: each of k, v, dk, dv
    kv_repeated: int  # B*Hq*M*D: k or v repeated to every query head, 0 when Hkv == Hq
    mask: int  # N*M: one boolean mask, shared by batch and heads
    elem: int  # bytes per element of q, k, v, o
    backward: bool
    causal: bool

    @property
    def gradients(self) -> int:
        """Bytes of dq, dk, dv (fwd_bwd only: the workload drops them after the call)."""
        return (self.q + 2 * self.kv) * self.elem if self.backward else 0

    @property
    def kv_copies(self) -> int:
        """Bytes of K and V repeated to every query head (grouped heads only)."""
        return 2 * self.kv_repeated * self.elem


def sizes(p: dict) -> Sizes:
    b, hq, hkv, n, m, d = shape(p)
    return Sizes(scores=b * hq * n * m, q=b * hq * n * d, kv=b * hkv * m * d,
                 kv_repeated=b * hq * m * d if hkv < hq else 0, mask=n * m, elem=element_bytes(p),
                 backward=p.get("direction") == "fwd_bwd", causal=bool(p.get("causal")))


def naive_peak_bytes(p: dict) -> float:
    """Dense attention with fp32 scores (naive): forward holds two fp32 score matrices
    (scores and probabilities; a 16-bit case also the probabilities cast back) and the
    output; forward+backward peaks at the softmax backward with three (the probabilities
    autograd kept, their gradient and the scores' gradient), the output and dv. K and V
    repeated for grouped heads and the causal mask come on top."""
    s = sizes(p)
    if s.backward:
        dense = 12 * s.scores + (s.q + s.kv) * s.elem
    else:
        dense = 8 * s.scores + (2 * s.scores if s.elem < 4 else s.q * s.elem)
    return s.kv_copies + dense + (s.mask if s.causal else 0)


def sdpa_math_peak_bytes(p: dict) -> float:
    """torch's math SDPA: as naive, plus q and k scaled by sqrt(scale) (copies). On the
    CPU it computes in fp32 (16-bit inputs are upcast, and a causal mask becomes an
    additive fp32 matrix); on a GPU its scores are in the input dtype."""
    s = sizes(p)
    on_cpu = p.get("device", "cpu") == "cpu"
    math_elem = 4 if on_cpu else s.elem
    scaled = (s.q + (s.kv_repeated or s.kv)) * math_elem
    if s.backward:
        dense = 3 * s.scores * math_elem + (s.q + s.kv) * s.elem
    else:
        upcast = (s.q + 2 * s.kv) * 4 if on_cpu and s.elem < 4 else 0
        dense = upcast + 2 * s.scores * math_elem + s.q * s.elem + (s.mask * math_elem if s.causal else 0)
    return s.kv_copies + scaled + dense


def flash_peak_bytes(p: dict) -> float:
    """A fused (FlashAttention-style) impl: the output and an fp32 log-sum-exp per
    query row; backward adds dq, dk, dv and fp32 row sums of dO * O. O(N), never
    O(N * M) (per-thread tiles of a CPU kernel come on top, visible at small N)."""
    s = sizes(p)
    rows = s.q // int(p["head_dim"])  # B*Hq*N
    forward = s.q * s.elem + rows * 4
    return 2 * forward + 2 * s.kv * s.elem if s.backward else forward


def eager_flex_peak_bytes(p: dict) -> float:
    """FlexAttention without torch.compile (the CPU path here): dense fp32 scores, the
    scaled and the masked copies and the probabilities, plus a boolean mask over every
    (batch, head, query, key): about 13 bytes per score; q in fp32 and the output."""
    s = sizes(p)
    return 13 * s.scores + s.q * (4 + s.elem)


def flex_peak_bytes(p: dict) -> float:
    """flex on CUDA runs compiled and fused; on the CPU eagerly and dense."""
    return flash_peak_bytes(p) if p.get("device") == "cuda" else eager_flex_peak_bytes(p)


def fp64_peak_bytes(p: dict) -> float:
    """The fp64 references (attention_fp64): fp64 copies of q, k, v (and K, V repeated
    for grouped heads), three fp64 score matrices at the softmax (scores, probabilities,
    their NaN-cleaned copy) and a couple of boolean masks; backward four, with fp64
    and input-dtype gradients."""
    s = sizes(p)
    copies = (s.q + 2 * s.kv + 2 * s.kv_repeated) * 8
    if s.backward:
        return copies + 32 * s.scores + s.gradients * (1 + 8 / s.elem) + 2 * s.mask
    return copies + 24 * s.scores + s.q * (8 + s.elem) + 2 * s.mask
