"""The exact attention impls equal fp64 attention on random inputs: shapes, causal, GQA, fwd and bwd."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.attention import masks
from impls.attention.reference import attention_fp64
from impls.precision import FLOAT_DTYPES

TOLERANCE = {"fp32": 2e-5, "fp16": 4e-3, "bf16": 3e-2}  # max abs error / max |expected|
GRAD_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 8e-2}  # 16-bit: the op check's (op_attention.py)
SLOW_FIRST_CALL = {"flex"}  # the first flex call in a process sets torch up: seconds


def _exact_attention(name: str) -> bool:
    impl = registry.get("attention", name)
    return impl.exact and impl.reference is None  # a pattern's reference is exact only to itself


# Every registered exact impl, read from the registry: a new one is tested without editing a
# list. Those that cannot run here (CUDA-only: triton_flash, flash-attn) are skipped with the
# reason; triton_flash runs under the interpreter in tests/triton_interpreted.
EXACT = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FIRST_CALL else n
         for n in registry.names("attention") if _exact_attention(n)]
SHAPES = [  # (B, Hq, Hkv, N, M, D)
    (1, 1, 1, 1, 1, 32),
    (3, 4, 4, 17, 17, 64),
    (2, 4, 2, 33, 33, 32),   # GQA
    (1, 4, 1, 5, 40, 128),   # MQA, cross/cached: queries at the end of a longer key sequence
]


def qkv(shape, dtype, seed=0):
    b, hq, hkv, n, m, d = shape
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen).to(dtype) for s in ((b, hq, n, d), (b, hkv, m, d), (b, hkv, m, d))]


def relative_error(out, expected):
    return float((out.double() - expected).abs().max() / expected.abs().max())


def runnable(name, precision, **call):
    """The impl, or a skip with the reason it cannot run this call on this CPU: unavailable,
    or outside the modes it defines (asked as every workload asks, registry.refusal)."""
    impl = registry.get("attention", name)
    ok, reason = registry.available(impl, "cpu", precision)
    reason = reason or registry.refusal(impl, device="cpu", precision=precision, **call)
    if not ok or reason:
        pytest.skip(f"{name} cannot run here: {reason}")
    return impl


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_forward_matches_fp64(name, precision, shape, causal):
    b, hq, hkv, n, m, d = shape
    impl = runnable(name, precision, batch=b, heads=hq, kv_heads=hkv, seq_len=n, kv_len=m, head_dim=d,
                    causal=causal, direction="fwd")
    q, k, v = qkv(shape, FLOAT_DTYPES[precision])
    out = impl.fn(q, k, v, causal=causal)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert relative_error(out, attention_fp64(q, k, v, causal=causal)) <= TOLERANCE[precision]


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("causal", [False, True])
def test_backward_matches_fp64(name, precision, causal):
    impl = runnable(name, precision, batch=2, heads=4, kv_heads=2, seq_len=19, kv_len=19, head_dim=32,
                    causal=causal, direction="fwd_bwd")
    if not impl.backward:
        pytest.skip(f"{name} has no backward pass")
    dtype = FLOAT_DTYPES[precision]
    inputs = [t.requires_grad_() for t in qkv((2, 4, 2, 19, 19, 32), dtype, seed=1)]
    inputs64 = [t.detach().double().requires_grad_() for t in inputs]
    grad = torch.randn(2, 4, 19, 32, generator=torch.Generator().manual_seed(2)).to(dtype)
    impl.fn(*inputs, causal=causal).backward(grad)
    attention_fp64(*inputs64, causal=causal).backward(grad.double())
    for got, expected in zip(inputs, inputs64):
        assert got.grad.dtype == dtype
        assert relative_error(got.grad, expected.grad) <= GRAD_TOLERANCE[precision]


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("kv_heads", [2, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_heads_equal_repeated_kv(name, kv_heads, causal):
    """Hkv < Hq (GQA, MQA): the same as repeating each KV head over its query group."""
    impl = runnable(name, "fp32", heads=4, kv_heads=kv_heads, seq_len=9, kv_len=13, head_dim=32, causal=causal)
    q, k, v = qkv((1, 4, kv_heads, 9, 13, 32), torch.float32, seed=5)
    repeated = [masks.repeat_kv(t, 4) for t in (k, v)]
    torch.testing.assert_close(impl.fn(q, k, v, causal=causal), impl.fn(q, *repeated, causal=causal),
                               rtol=1e-5, atol=1e-6)


def test_causal_mask_is_bottom_right_aligned():
    mask = masks.causal(2, 4)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    with pytest.raises(ValueError, match="kv_len >= seq_len"):
        masks.causal(4, 2)


def test_reference_is_softmax_of_scores_by_brute_force():
    q, k, v = qkv((1, 1, 1, 3, 3, 4), torch.float64, seed=3)
    out = attention_fp64(q, k, v, causal=True)
    for i in range(3):
        scores = torch.tensor([float(q[0, 0, i] @ k[0, 0, j]) / 2.0 for j in range(i + 1)], dtype=torch.float64)
        expected = sum(w * v[0, 0, j] for j, w in enumerate(torch.softmax(scores, 0)))
        torch.testing.assert_close(out[0, 0, i], expected)


def test_grouped_heads_share_their_kv_head():
    q, k, v = qkv((1, 4, 2, 6, 6, 8), torch.float64, seed=4)
    out = attention_fp64(q, k, v, causal=False)
    # query heads 0,1 use kv head 0; heads 2,3 use kv head 1
    alone = attention_fp64(q[:, 2:3], k[:, 1:2], v[:, 1:2], causal=False)
    torch.testing.assert_close(out[:, 2:3], alone)
