"""Attention with Q K^T in int8: per-row symmetric quantisation, int32 scores.

Each query row and each key row is scaled by its own max |x| / 127 and
rounded to int8; the integer product is exact in int32 (|sum| <= D * 127^2),
so the only error is the rounding of q and k. Scores are dequantised to fp32
(times both row scales and the softmax scale); softmax runs in fp32 and
P V in the dtype of v (fp16 on a GPU, fp32 on the CPU). Grouped heads share a
quantised K: the group's query rows are stacked into one int8 matmul.

`int8_reference` is exact fp64 attention on the quantised-then-dequantised q
and k, so it pins down everything except the quantisation itself, and the
op workload's `exact_rel_err` shows what the quantisation costs.
"""
from __future__ import annotations


import torch

from impls.attention import cost, masks
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

QMAX = 127  # symmetric: -127..127, so negation never overflows
INT_MM_MIN_ROWS = 17  # CUDA _int_mm wants more than 16 rows
INT_MM_MULTIPLE = 8  # ... and inner and output sizes that are multiples of 8


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., D) -> (int8 values (..., D), fp32 scales (..., 1)), x ~ values * scales.

    Quantisation is defined in fp32 whatever the input dtype, so the impl and
    its fp64 reference round to the same grid.
    """
    x32 = x.detach().float()
    scales = x32.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / QMAX
    values = torch.round(x32 / scales).clamp_(-QMAX, QMAX).to(torch.int8)
    return values, scales


def _padded(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, cols - x.shape[1], 0, rows - x.shape[0]))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def int_matmul_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (R, D) int8 @ b (C, D) int8 transposed -> (R, C) int32, exact.

    torch._int_mm runs on both devices; CUDA constrains the shape, so the
    operands are zero-padded (zeros add nothing to a dot product) and the
    result cut back. The CPU pads too, so its tests run the GPU's code.
    """
    r, d = a.shape
    c = b.shape[0]
    inner = _round_up(d, INT_MM_MULTIPLE)
    a = _padded(a, max(INT_MM_MIN_ROWS, _round_up(r, INT_MM_MULTIPLE)), inner)
    b = _padded(b, _round_up(c, INT_MM_MULTIPLE), inner)
    return torch._int_mm(a, b.t().contiguous())[:r, :c]


def int8_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Dequantised scores q k^T in fp32, (B, Hq, N, M), from int8 q and k rows."""
    b, hq, n, d = q.shape
    hkv, m = k.shape[1], k.shape[2]
    group = hq // hkv
    q_int, q_scales = quantize_rows(q)  # (B, Hq, N, D), (B, Hq, N, 1)
    k_int, k_scales = quantize_rows(k)  # (B, Hkv, M, D), (B, Hkv, M, 1)
    scores = torch.empty((b, hq, n, m), dtype=torch.int32, device=q.device)
    for i in range(b):
        for h in range(hkv):
            stacked = q_int[i, h * group:(h + 1) * group].reshape(group * n, d)  # the group's queries
            scores[i, h * group:(h + 1) * group] = int_matmul_t(stacked, k_int[i, h]).view(group, n, m)
    k_scales = masks.repeat_kv(k_scales, hq).transpose(-1, -2)  # (B, Hq, 1, M)
    return scores.float().mul_(q_scales).mul_(k_scales)


def peak_bytes(p: dict) -> float:
    """int8 copies of q and k with fp32 row scales, the int32 and fp32 score
    matrices alive together, then fp32 probabilities, and the output (in the input
    dtype: fp32 on the CPU, fp16 on a GPU)."""
    b, hq, hkv, n, m, d = cost.shape(p)
    quantised = b * (hq * n + hkv * m) * (d + 4)
    return quantised + 2 * b * hq * n * m * 4 + b * hq * n * d * cost.element_bytes(p)


def reference_peak_bytes(p: dict) -> float:
    """The fp64 reference on the dequantised q and k, which are copies in the input dtype."""
    s = cost.sizes(p)
    return cost.fp64_peak_bytes(p) + 2 * (s.q + s.kv) * s.elem


@register("attention", "int8", precisions=("int8",), exact=False, reference="int8_reference",
          flops=cost.flops, bytes_moved=cost.bytes_moved, backward=False, peak_bytes=peak_bytes)
def int8_attention(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """Q K^T in int8 (per-row symmetric scales, int32 accumulation); softmax fp32, P V in v's dtype."""
    scale = default_scale(q, scale)
    scores = int8_scores(q, k).mul_(scale)
    if causal:
        scores.masked_fill_(~masks.causal(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    del scores
    return probs.to(v.dtype) @ masks.repeat_kv(v, q.shape[1])


def dequantized(x: torch.Tensor) -> torch.Tensor:
    """x rounded to its int8 grid and scaled back, in x's dtype."""
    values, scales = quantize_rows(x)
    return values.to(x.dtype) * scales.to(x.dtype)


@register("attention", "int8_reference", reference="int8_reference", precisions=("fp32",), backward=False,
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=reference_peak_bytes)
def int8_reference(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """Exact attention on the int8-rounded q and k (fp64 inside): the int8 impl's specification."""
    scale = default_scale(q, scale)
    return attention_fp64(dequantized(q), dequantized(k), v, causal=causal, scale=scale).to(q.dtype)
