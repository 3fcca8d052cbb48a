"""Sparse and low-rank attention: local, longformer, bigbird, sparse_strided, linformer.

Two halves of the specification: each masked reference equals attention over the
allowed set written out with Python loops from the paper's definition, and each
blocked impl equals its reference on random inputs of awkward shapes.
"""
from __future__ import annotations

import math

import pytest
import torch
from tests.torch_watch import LargestTensor

from impls import registry
from impls.attention.bigbird import random_blocks
from impls.attention.linformer import projections
from tests.conftest import make_case, prepare

TOLERANCE = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}

# Small params so that tiny sequences still span several blocks / windows.
SMALL = {
    "local": {"window": 5},
    "longformer": {"window": 5, "global_tokens": 3},
    "bigbird": {"block_size": 4, "window_blocks": 2, "global_blocks": 1, "num_random_blocks": 2,
                "pattern_seed": 3},
    "sparse_strided": {"stride": 4},
    "linformer": {"proj_k": 8, "proj_seed": 1},
    "lra_local": {"block_size": 5},
}
CAUSAL = {"local": [False, True], "longformer": [False, True], "bigbird": [False, True],
          "sparse_strided": [True], "linformer": [False], "lra_local": [False]}
CASES = [(name, causal) for name in SMALL for causal in CAUSAL[name]]
# (batch, heads, kv_heads, seq_len, head_dim): one token, lengths off the block grid, GQA/MQA
SHAPES = [(1, 2, 2, 1, 32), (3, 2, 2, 23, 64), (1, 4, 2, 37, 128), (1, 4, 1, 50, 32)]


def qkv(batch, heads, kv_heads, n, dim, dtype=torch.float32, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, heads, n, dim), (batch, kv_heads, n, dim), (batch, kv_heads, n, dim)]
    return [torch.randn(s, generator=gen).to(dtype).requires_grad_(grad) for s in shapes]


def rel_err(out, expected):
    out, expected = out.detach().double(), expected.detach().double()
    return float((out - expected).abs().max() / expected.abs().max())


def impl_and_reference(name):
    impl = registry.get("attention", name)
    return impl.fn, registry.get("attention", impl.reference).fn


# ---- impl vs its reference ---------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,causal", CASES)
def test_sparse_impl_matches_reference_fp32(name, causal, shape):
    fn, reference = impl_and_reference(name)
    q, k, v = qkv(*shape)
    out = fn(q, k, v, causal=causal, **SMALL[name])
    assert out.shape == q.shape and out.dtype == q.dtype
    expected = reference(q.double(), k.double(), v.double(), causal=causal, **SMALL[name])
    assert rel_err(out, expected) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name,causal", CASES)
def test_sparse_impl_matches_reference_low_precision(name, causal, dtype):
    fn, reference = impl_and_reference(name)
    q, k, v = qkv(1, 2, 1, 21, 32, dtype=dtype)
    out = fn(q, k, v, causal=causal, **SMALL[name])
    assert out.dtype == dtype
    expected = reference(q.double(), k.double(), v.double(), causal=causal, **SMALL[name])
    assert rel_err(out, expected) < TOLERANCE[dtype]


GRAD_TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}  # 16-bit: the op check's


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name,causal", CASES)
def test_sparse_impl_gradients_match_reference(name, causal, dtype):
    fn, reference = impl_and_reference(name)
    q, k, v = qkv(2, 4, 2, 19, 32, dtype=dtype, grad=True)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    fn(q, k, v, causal=causal, **SMALL[name]).backward(grad_out)
    inputs64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    reference(*inputs64, causal=causal, **SMALL[name]).backward(grad_out.double())
    for t, t64 in zip((q, k, v), inputs64):
        assert t.grad.dtype == dtype
        assert rel_err(t.grad, t64.grad) < GRAD_TOLERANCE[dtype]


@pytest.mark.parametrize("n,m", [(21, 40), (33, 9), (1, 17)])
def test_linformer_cross_attention_matches_reference(n, m):
    """M != N: E and F project the M keys; forward and gradients equal the fp64 spec."""
    fn, reference = impl_and_reference("linformer")
    gen = torch.Generator().manual_seed(n + m)
    q = torch.randn(2, 4, n, 32, generator=gen).requires_grad_()
    k, v = (torch.randn(2, 2, m, 32, generator=gen).requires_grad_() for _ in range(2))
    out = fn(q, k, v, causal=False, **SMALL["linformer"])
    assert out.shape == q.shape
    inputs64 = [t.detach().double().requires_grad_() for t in (q, k, v)]
    expected = reference(*inputs64, causal=False, **SMALL["linformer"])
    assert rel_err(out, expected) < TOLERANCE[torch.float32]
    grad_out = torch.randn(q.shape, generator=gen)
    out.backward(grad_out)
    expected.backward(grad_out.double())
    for t, t64 in zip((q, k, v), inputs64):
        assert rel_err(t.grad, t64.grad) < GRAD_TOLERANCE[torch.float32]


@pytest.mark.parametrize("name,causal", CASES)
def test_sparse_impl_with_default_params_matches_reference(name, causal):
    """Registered defaults (window 256, blocks of 64, ...) over several blocks."""
    fn, reference = impl_and_reference(name)
    q, k, v = qkv(1, 2, 2, 300, 16)
    expected = reference(q.double(), k.double(), v.double(), causal=causal)
    assert rel_err(fn(q, k, v, causal=causal), expected) < TOLERANCE[torch.float32]


# ---- masked references vs the papers' definitions, by brute force -------------------------

def brute_force(q, k, v, allowed) -> torch.Tensor:
    """Attention of one head, (N, D), over allowed(i) -> list of keys, row by row in fp64."""
    out = torch.zeros(q.shape[0], v.shape[1], dtype=torch.float64)
    for i in range(q.shape[0]):
        keys = allowed(i)
        scores = torch.stack([q[i] @ k[j] for j in keys]) / math.sqrt(q.shape[1])
        weights = torch.softmax(scores, dim=0)
        out[i] = sum(w * v[j] for w, j in zip(weights, keys))
    return out


def local_set(i, n, window, causal):
    """masks.py's window rule: keys within distance window - 1; causal drops the future."""
    if causal:  # the window most recent positions, itself included
        return [j for j in range(n) if i - window < j <= i]
    return [j for j in range(n) if i - window < j < i + window]


def longformer_set(i, n, window, global_tokens, causal):
    keys = set(local_set(i, n, window, causal)) | set(range(min(global_tokens, n)))
    if i < global_tokens:
        keys |= set(range(n))
    return sorted(j for j in keys if not causal or j <= i)


def strided_set(i, stride):
    """Child et al. 2019: A1 = {max(0, i - l), ..., i}, A2 = {j : (i - j) mod l = 0}, j <= i."""
    return sorted(set(range(max(0, i - stride), i + 1)) | {j for j in range(i + 1) if (i - j) % stride == 0})


def bigbird_set(i, n, block, window_blocks, global_blocks, random, causal):
    a = i // block
    keys = []
    for j in range(n):
        c = j // block
        if (abs(a - c) < window_blocks or a < global_blocks or c < global_blocks or c in random[a]) \
                and (not causal or j <= i):
            keys.append(j)
    return keys


def lra_local_set(i, n, block_size):
    """LRA's local attention read off its code: pad n to L = n + block_size - n % block_size,
    reshape positions (L,) to (block_size, L / block_size) row-major and attend within a
    column: key j is seen from i iff both sit in the same column (and j is a real token)."""
    length = n + block_size - n % block_size
    grid = torch.arange(length).reshape(block_size, length // block_size)
    column = (grid == i).nonzero()[0, 1]
    return [int(j) for j in grid[:, column] if j < n]


def check_against_brute_force(name, causal, params, allowed, n=17):
    q, k, v = (t[0, 0] for t in qkv(1, 1, 1, n, 8, dtype=torch.float64, seed=5))
    reference = registry.get("attention", name).fn
    out = reference(q[None, None], k[None, None], v[None, None], causal=causal, **params)[0, 0]
    torch.testing.assert_close(out, brute_force(q, k, v, allowed), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [1, 4, 5, 40])
def test_local_reference_matches_brute_force(window, causal):
    check_against_brute_force("local_reference", causal, {"window": window},
                              lambda i: local_set(i, 17, window, causal))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window,global_tokens", [(4, 0), (3, 2), (5, 20)])
def test_longformer_reference_matches_brute_force(window, global_tokens, causal):
    check_against_brute_force("longformer_reference", causal, {"window": window, "global_tokens": global_tokens},
                              lambda i: longformer_set(i, 17, window, global_tokens, causal))


@pytest.mark.parametrize("block_size", [1, 4, 5, 17, 50])
def test_lra_local_reference_matches_lras_reshape(block_size):
    check_against_brute_force("lra_local_reference", False, {"block_size": block_size},
                              lambda i: lra_local_set(i, 17, block_size))


@pytest.mark.parametrize("stride", [1, 3, 4, 20])
def test_sparse_strided_reference_matches_paper_definition(stride):
    check_against_brute_force("sparse_strided_reference", True, {"stride": stride},
                              lambda i: strided_set(i, stride))


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_reference_matches_brute_force(causal):
    params = {"block_size": 3, "window_blocks": 2, "global_blocks": 1, "num_random_blocks": 1,
              "pattern_seed": 7}
    random = random_blocks(6, 2, 1, 1, 7, causal)  # 17 tokens in blocks of 3: 6 blocks
    check_against_brute_force("bigbird_reference", causal, params,
                              lambda i: bigbird_set(i, 17, 3, 2, 1, random, causal))


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_random_blocks_are_new_distinct_and_seeded(causal):
    n_blocks, window_blocks, global_blocks, count = 20, 2, 2, 3
    picks = random_blocks(n_blocks, window_blocks, global_blocks, count, 11, causal)
    for a, chosen in enumerate(picks):
        if a < global_blocks:
            assert chosen == ()
            continue
        candidates = [c for c in range(global_blocks, (a if causal else n_blocks - 1) + 1)
                      if abs(a - c) >= window_blocks]
        assert len(set(chosen)) == len(chosen) == min(count, len(candidates))
        assert set(chosen) <= set(candidates)
    assert picks == random_blocks(n_blocks, window_blocks, global_blocks, count, 11, causal)
    assert picks != random_blocks(n_blocks, window_blocks, global_blocks, count, 12, causal)


# ---- errors, projections, work counts ---------------------------------------------------

@pytest.mark.parametrize("name", ["local", "longformer", "bigbird", "sparse_strided"])
def test_sparse_impls_reject_cross_attention(name):
    q = torch.randn(1, 2, 8, 16)
    kv = torch.randn(1, 2, 12, 16)
    for fn in impl_and_reference(name):
        with pytest.raises(ValueError, match="self-attention"):
            fn(q, kv, kv, causal=True, **SMALL[name])


def test_modes_outside_the_definition_raise_clear_errors():
    q = torch.randn(1, 2, 8, 16)
    for fn in impl_and_reference("linformer"):
        with pytest.raises(ValueError, match="linformer has no causal form"):
            fn(q, q, q, causal=True)
    for fn in impl_and_reference("sparse_strided"):
        with pytest.raises(ValueError, match="causal only"):
            fn(q, q, q, causal=False)


def test_linformer_projections_are_seeded_and_scaled():
    e, f = projections(4096, 64, 0)
    e2, _ = projections(4096, 64, 0, "cpu", torch.float64)
    assert torch.equal(e.double(), e2)
    assert not torch.equal(e, projections(4096, 64, 1)[0]) and not torch.equal(e, f)
    assert abs(float(e.std()) * math.sqrt(4096) - 1.0) < 0.02


@pytest.mark.parametrize("name", ["local", "longformer", "bigbird", "linformer"])
def test_sparse_flops_grow_linearly_with_sequence(name):
    impl = registry.get("attention", name)
    params = {"batch": 1, "heads": 4, "head_dim": 64, "causal": name != "linformer"}
    small, large = (impl.flops({**params, "seq_len": n}) for n in (8192, 65536))
    assert 7.5 < large / small < 8.5  # x8 length -> about x8 work (exact attention: x64)



@pytest.mark.parametrize("name,params", [
    ("local", {"window": 64}), ("longformer", {"window": 64, "global_tokens": 16}),
    ("bigbird", {"block_size": 32}), ("sparse_strided", {"stride": 32}), ("linformer", {"proj_k": 64}),
])
def test_sparse_impls_never_materialise_n_by_n(name, params):
    n = 2048
    q, k, v = qkv(1, 1, 1, n, 16)
    with torch.no_grad(), LargestTensor() as largest:
        registry.get("attention", name).fn(q, k, v, causal=name == "sparse_strided", **params)
    assert largest.most < n * n // 8


# ---- through the op workload, as a suite would run them -------------------------------------

@pytest.mark.parametrize("name", ["chunked", "local", "longformer", "bigbird", "sparse_strided", "linformer"])
def test_op_workload_checks_impl_within_tolerance(name):
    impl = registry.get("attention", name)
    params = {"batch": 2, "heads": 4, "kv_heads": 2, "seq_len": 40, "head_dim": 32,
              "causal": name != "linformer", "direction": "fwd_bwd", "precision": "fp32", **SMALL.get(name, {})}
    prepared = prepare(make_case("op", "attention", name, axes=("seq_len",), **params))
    metrics = prepared.check()
    assert metrics["within_tolerance"] == 1.0, metrics
    assert ("exact_rel_err" in metrics) == ("exact_max_abs_err" in metrics) == (not impl.exact)
    prepared.run()
    assert prepared.work["flops"] > 0 and prepared.work["expected_peak_bytes"] > 0
