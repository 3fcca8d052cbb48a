"""chunked: exact blocked attention with an online softmax, checked against the fp64 spec."""
from __future__ import annotations

import pytest
import torch
from tests.torch_watch import LargestTensor

from impls import registry
from impls.attention import cost
from impls.attention.chunked import chunked, computed_pairs
from impls.attention.reference import attention_fp64

TOLERANCE = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def qkv(batch, heads, kv_heads, n, m, dim, dtype=torch.float32, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, n, dim), (batch, kv_heads, m, dim), (batch, kv_heads, m, dim)]
    return [torch.randn(s, generator=gen).to(dtype).requires_grad_(grad) for s in shapes]


def rel_err(out, expected):
    return float((out.double() - expected.double()).abs().max() / expected.double().abs().max())


# (batch, heads, kv_heads, seq_len, kv_len, head_dim, block_size): odd lengths, one-row
# queries, blocks larger than the sequence, M > N (KV-cache alignment), grouped heads.
SHAPES = [
    (1, 2, 2, 1, 1, 32, 16),
    (1, 2, 2, 1, 23, 32, 8),
    (3, 2, 2, 37, 37, 64, 16),
    (1, 4, 2, 45, 70, 32, 16),
    (1, 4, 1, 20, 20, 128, 128),
    (2, 6, 3, 33, 33, 64, 7),
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_chunked_matches_reference_on_odd_shapes(shape, causal):
    b, hq, hkv, n, m, d, block = shape
    q, k, v = qkv(b, hq, hkv, n, m, d)
    out = chunked(q, k, v, causal=causal, block_size=block)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert rel_err(out, attention_fp64(q, k, v, causal=causal)) < TOLERANCE[torch.float32]


LOW_PRECISION_SHAPES = [  # (batch, heads, kv_heads, seq_len, kv_len, head_dim, block_size)
    (1, 4, 2, 29, 29, 32, 8),
    (3, 2, 2, 1, 17, 64, 16),  # one query against several key blocks
    (1, 2, 1, 23, 40, 128, 16),  # MQA, M > N, D=128
]
GRAD_TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}  # the op check's


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", LOW_PRECISION_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_chunked_low_precision_matches_reference(dtype, shape, causal):
    b, hq, hkv, n, m, d, block = shape
    q, k, v = qkv(b, hq, hkv, n, m, d, dtype=dtype)
    out = chunked(q, k, v, causal=causal, block_size=block)
    assert out.dtype == dtype
    assert rel_err(out, attention_fp64(q, k, v, causal=causal)) < TOLERANCE[dtype]


def _gradient_errors(dtype, shape, causal) -> list[float]:
    b, hq, hkv, n, m, d, block = shape
    q, k, v = qkv(b, hq, hkv, n, m, d, dtype=dtype, grad=True)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    chunked(q, k, v, causal=causal, block_size=block).backward(grad_out)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    attention_fp64(q64, k64, v64, causal=causal).backward(grad_out.double())
    return [rel_err(t.grad, t64.grad) for t, t64 in ((q, q64), (k, k64), (v, v64))]


@pytest.mark.parametrize("causal", [False, True])
def test_chunked_gradients_match_reference(causal):
    assert max(_gradient_errors(torch.float32, (2, 4, 2, 19, 19, 32, 8), causal)) < GRAD_TOLERANCE[torch.float32]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", LOW_PRECISION_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_chunked_low_precision_gradients_match_reference(dtype, shape, causal):
    assert max(_gradient_errors(dtype, shape, causal)) < GRAD_TOLERANCE[dtype]


def test_chunked_grouped_heads_equal_repeated_kv():
    """Hkv < Hq shares K/V across a group: same as repeating K/V to Hq heads."""
    q, k, v = qkv(2, 8, 2, 25, 25, 32)
    grouped = chunked(q, k, v, causal=True, block_size=8)
    repeated = chunked(q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1), causal=True, block_size=8)
    torch.testing.assert_close(grouped, repeated, rtol=1e-5, atol=1e-6)


def test_chunked_rejects_heads_that_do_not_divide():
    q, k, v = qkv(1, 3, 2, 8, 8, 16)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        chunked(q, k, v, causal=False)


def test_chunked_flops_are_exact_attentions_halved_for_causal():
    """An exact impl counts the useful FLOPs (4 B H N M D, causal the triangle), not the
    whole key blocks it visits; the pairs it computes drive only its memory model."""
    params = {"batch": 1, "heads": 2, "seq_len": 256, "head_dim": 64, "causal": True, "block_size": 128}
    flops = registry.get("attention", "chunked").flops
    assert flops(params) == 4.0 * 2 * 64 * (256 * 257 // 2)
    assert flops(params | {"causal": False}) == 4.0 * 2 * 64 * 256 * 256
    # N = M = 256, block 128: query block 0 visits key block 0, block 1 visits both
    assert computed_pairs(256, 256, True, 128) == 128 * 128 + 128 * 256
    assert computed_pairs(256, 256, False, 128) == 256 * 256
    for n, m, block in ((100, 100, 16), (37, 90, 8), (1, 5, 4)):
        assert computed_pairs(n, m, True, block) >= cost.attended_pairs(n, m, True)


def test_chunked_forward_never_materialises_the_score_matrix():
    n, block = 512, 64
    q, k, v = qkv(1, 1, 1, n, n, 16)
    with torch.no_grad(), LargestTensor() as largest:
        chunked(q, k, v, causal=False, block_size=block)
    assert largest.most <= max(n * 16, block * block)  # the output, or one tile
    assert largest.most < n * n // 8
