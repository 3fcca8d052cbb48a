"""FlexAttention impls: causal flex equals exact attention; flex_window equals
its masked fp64 reference; the window's pair count matches its mask."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.attention.flex import window_keep, window_pairs
from impls.attention.reference import attention_fp64

SHAPES = [  # (B, Hq, Hkv, N, M, D, causal); each new shape costs eager flex ~1 s here
    (1, 2, 1, 17, 17, 32, False),  # grouped heads
    (2, 4, 2, 33, 40, 64, True),  # grouped heads, M > N
]


def _qkv(b, hq, hkv, n, m, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, hq, n, d, generator=gen), torch.randn(b, hkv, m, d, generator=gen),
            torch.randn(b, hkv, m, d, generator=gen))


def _rel(out, expected):
    return float((out.double() - expected).abs().max() / expected.abs().max())


def _flex_runs_on_cpu() -> tuple[bool, str]:
    return registry.available(registry.get("attention", "flex"), "cpu", "fp32")


@pytest.mark.parametrize("n,m,window,causal",
                         [(17, 17, 4, True), (9, 23, 5, False), (1, 6, 3, True), (8, 8, 100, False)])
def test_window_pairs_counts_the_window_mask(n, m, window, causal):
    assert window_pairs(n, m, window, causal) == int(window_keep(n, m, window, causal).sum())


def test_window_mask_is_the_causal_band_ending_on_the_aligned_diagonal():
    keep = window_keep(3, 6, 2, causal=True)  # query i is aligned with key i + 3
    expected = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(keep, expected)


def test_wide_window_reference_is_exact_attention():
    q, k, v = [t.double() for t in _qkv(1, 2, 1, 9, 12, 16)]
    ref = registry.get("attention", "flex_window_reference").fn
    assert torch.allclose(ref(q, k, v, causal=True, window=12), attention_fp64(q, k, v, causal=True))


@pytest.mark.slow  # the first flex call in a process sets torch up: ~5-10 s on this CPU
@pytest.mark.parametrize("shape", SHAPES)
def test_flex_matches_exact_attention_on_cpu(shape):
    ok, reason = _flex_runs_on_cpu()
    if not ok:  # then the reason must say so plainly
        assert "flex_attention" in reason
        pytest.skip(reason)
    *dims, causal = shape
    q, k, v = _qkv(*dims)
    out = registry.get("attention", "flex").fn(q, k, v, causal=causal)
    assert _rel(out, attention_fp64(q, k, v, causal=causal)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_flex_window_matches_its_masked_reference_and_differs_from_exact(shape):
    ok, reason = _flex_runs_on_cpu()
    if not ok:
        pytest.skip(reason)
    *dims, causal = shape
    q, k, v = _qkv(*dims, seed=1)
    out = registry.get("attention", "flex_window").fn(q, k, v, causal=causal, window=4)
    expected = registry.get("attention", "flex_window_reference").fn(
        q.double(), k.double(), v.double(), causal=causal, window=4)
    assert _rel(out, expected) < 1e-5
    if dims[3] > 4:  # more keys than the window: dropping them must show
        assert _rel(out, attention_fp64(q, k, v, causal=causal)) > 1e-2


@pytest.mark.slow  # torch.compile of flex
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape", SHAPES)
def test_flex_and_flex_window_on_cuda_match_their_references(shape):
    *dims, causal = shape
    q, k, v = [t.cuda().half() for t in _qkv(*dims)]
    out = registry.get("attention", "flex").fn(q, k, v, causal=causal)
    assert _rel(out, attention_fp64(q, k, v, causal=causal)) < 5e-3
    out = registry.get("attention", "flex_window").fn(q, k, v, causal=causal, window=4)
    expected = registry.get("attention", "flex_window_reference").fn(
        q.double(), k.double(), v.double(), causal=causal, window=4)
    assert _rel(out, expected) < 5e-3
