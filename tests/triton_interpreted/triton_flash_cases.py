"""triton_flash against fp64 attention, forward and backward.

The kernels run under TRITON_INTERPRET=1 on the CPU, which must be set before
triton is imported: tests/test_triton_flash.py runs this file in a fresh
process with it set (or without it on a CUDA machine). Collected any other
way, it skips. The interpreter is slow, so shapes are tiny (N <= 40) but
cover what the kernels mask: N = 1, N and M not multiples of the 16-wide
tile, M > N under a causal mask, grouped heads, D = 32, 48 (not a power of
two), 64 and 128, B = 1, 2 and 3, each precision causal and not, forward and
backward.
"""
from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip("triton")
DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("needs TRITON_INTERPRET=1 (tests/test_triton_flash.py sets it) or a GPU", allow_module_level=True)

from impls import registry  # noqa: E402  (after the interpreter decision above)
from impls.attention.reference import attention_fp64  # noqa: E402
from impls.attention.triton_flash import triton_flash  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OUT_TOL = {"fp32": 1e-5, "fp16": 4e-3, "bf16": 3e-2}
GRAD_TOL = {"fp32": 1e-5, "fp16": 8e-3, "bf16": 5e-2}

CASES = [  # (B, Hq, Hkv, N, M, D, causal, precision)
    (1, 1, 1, 1, 1, 32, True, "fp32"),  # one query, one key
    (1, 2, 2, 1, 20, 32, True, "fp16"),  # decode-like: one query sees every key
    (1, 2, 2, 17, 17, 32, True, "fp16"),
    (1, 2, 2, 17, 33, 64, True, "fp32"),  # M > N: the diagonal is shifted by M - N
    (2, 2, 1, 21, 21, 32, False, "bf16"),  # grouped heads, batch 2
    (1, 2, 1, 17, 40, 64, False, "fp16"),
    (1, 1, 1, 9, 20, 48, True, "bf16"),  # D padded to the next power of two
    (1, 2, 2, 19, 19, 128, False, "fp32"),  # D=128, fp32 non-causal, N off the tile
    (1, 2, 1, 17, 17, 128, True, "bf16"),  # D=128 causal, grouped heads
    (3, 1, 1, 1, 9, 128, False, "fp16"),  # batch 3, one query, D=128
    (3, 2, 1, 18, 25, 32, False, "fp16"),  # batch 3, grouped heads, M > N non-causal
    (3, 1, 1, 23, 23, 64, True, "bf16"),  # batch 3, causal, N off the tile
    (1, 1, 1, 1, 1, 128, False, "bf16"),  # one query, one key, D=128
]


def _err(out: torch.Tensor, expected: torch.Tensor) -> float:
    """max |out - expected| relative to max |expected| (absolute where that is below 1)."""
    out, expected = out.detach().double(), expected.detach()
    return float((out - expected).abs().max() / expected.abs().max().clamp_min(1.0))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}-H{}/{}-N{}-M{}-D{}-{}-{}".format(*c))
def test_triton_flash_forward_and_backward_match_fp64(case):
    b, hq, hkv, n, m, d, causal, precision = case
    gen = torch.Generator().manual_seed(n * 100 + m)
    shapes = [(b, hq, n, d), (b, hkv, m, d), (b, hkv, m, d)]
    q, k, v = [torch.randn(s, generator=gen).to(DEVICE, DTYPES[precision]).requires_grad_() for s in shapes]
    q64, k64, v64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    out = triton_flash(q, k, v, causal=causal)
    expected = attention_fp64(q64, k64, v64, causal=causal)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert _err(out, expected) < OUT_TOL[precision]
    grad = torch.randn(out.shape, generator=gen).to(DEVICE, out.dtype)
    out.backward(grad)
    expected.backward(grad.double())
    for name, ours, exact in (("dq", q, q64), ("dk", k, k64), ("dv", v, v64)):
        assert _err(ours.grad, exact.grad) < GRAD_TOL[precision], name


def test_triton_flash_takes_an_explicit_scale():
    gen = torch.Generator().manual_seed(7)
    q, k, v = [torch.randn(1, 1, 5, 32, generator=gen).to(DEVICE) for _ in range(3)]
    out = triton_flash(q, k, v, causal=False, scale=0.3)
    assert _err(out, attention_fp64(q, k, v, causal=False, scale=0.3)) < 1e-5


def test_triton_flash_is_available_here():
    impl = registry.get("attention", "triton_flash")
    assert registry.available(impl, DEVICE, "bf16") == (True, "")
