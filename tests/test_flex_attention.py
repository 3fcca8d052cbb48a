"""FlexAttention impls: causal flex equals exact attention; flex_window equals
its masked fp64 reference and `local` for the same window; the tiles its FLOPs
count are those of the block mask."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.attention import masks
from impls.attention.flex import window_block_pairs
from impls.attention.reference import attention_fp64
from tests.conftest import make_case, max_rel_err, prepare, random_qkv

SHAPES = [  # (B, Hq, Hkv, N, M, D, causal); each new shape costs eager flex ~0.5 s here
    (1, 2, 1, 17, 17, 32, False),  # grouped heads
    (2, 4, 2, 33, 40, 64, True),  # grouped heads, M > N
    (3, 2, 2, 1, 9, 128, True),  # one query, batch 3, D=128
]
TOLERANCE = {"fp32": 1e-5, "fp16": 5e-3, "bf16": 3e-2}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _flex_or_skip(precision: str = "fp32") -> None:
    ok, reason = registry.available(registry.get("attention", "flex"), "cpu", precision)
    if not ok:  # then the reason must say so plainly
        assert "flex_attention" in reason
        pytest.skip(reason)


@pytest.mark.parametrize("n,m,window,causal",
                         [(300, 300, 64, True), (300, 300, 64, False), (200, 457, 100, True), (1, 6, 3, True),
                          (129, 129, 1, False), (64, 64, 500, False)])
def test_window_tiles_are_those_of_the_flex_block_mask(n, m, window, causal):
    """flex_window's FLOPs on CUDA count whole 128 x 128 tiles of the window: exactly the
    tiles a dense mask of the window touches, clipped to the sequence."""
    keep = masks.window(n, m, window, causal)
    tiles = 0
    for r in range(0, n, 128):
        for c in range(0, m, 128):
            block = keep[r:r + 128, c:c + 128]
            tiles += block.numel() if block.any() else 0
    assert window_block_pairs(n, m, window, causal) == tiles


def test_window_flops_follow_the_path_flex_takes():
    flops = registry.get("attention", "flex_window").flops
    params = {"batch": 1, "heads": 2, "seq_len": 1024, "head_dim": 64, "causal": True, "window": 128}
    dense = 4.0 * 2 * 64 * 1024 * 1024  # eager on the CPU: every score, then the mask
    assert flops(params | {"device": "cpu"}) == dense
    assert flops(params | {"device": "cuda"}) == 4.0 * 2 * 64 * window_block_pairs(1024, 1024, 128, True)
    assert flops(params | {"device": "cuda"}) < dense / 3


def test_window_mask_is_the_causal_band_ending_on_the_aligned_diagonal():
    keep = masks.window(3, 6, 2, causal=True)  # query i is aligned with key i + 3
    expected = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(keep, expected)


@pytest.mark.parametrize("window", [1, 3, 4, 16])
@pytest.mark.parametrize("causal", [False, True])
def test_local_and_flex_window_references_share_one_window_rule(window, causal):
    q, k, v = [t.double() for t in random_qkv(1, 2, 2, 13, 13, 8, seed=2)]
    local = registry.get("attention", "local_reference").fn(q, k, v, causal=causal, window=window)
    flex = registry.get("attention", "flex_window_reference").fn(q, k, v, causal=causal, window=window)
    torch.testing.assert_close(local, flex, rtol=0, atol=0)


@pytest.mark.slow  # the first flex call in a process sets torch up: ~5-10 s on this CPU
@pytest.mark.parametrize("window", [3, 8])
@pytest.mark.parametrize("causal", [False, True])
def test_local_and_flex_window_agree_for_the_same_window(window, causal):
    _flex_or_skip()
    q, k, v = random_qkv(1, 2, 1, 37, 37, 32, seed=4)
    local = registry.get("attention", "local").fn(q, k, v, causal=causal, window=window)
    flex = registry.get("attention", "flex_window").fn(q, k, v, causal=causal, window=window)
    assert max_rel_err(local, flex.double()) < 1e-5


def test_wide_window_reference_is_exact_attention():
    q, k, v = [t.double() for t in random_qkv(1, 2, 1, 9, 12, 16)]
    ref = registry.get("attention", "flex_window_reference").fn
    assert torch.allclose(ref(q, k, v, causal=True, window=12), attention_fp64(q, k, v, causal=True))


@pytest.mark.slow  # the first flex call in a process sets torch up: ~5-10 s on this CPU
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("shape", SHAPES)
def test_flex_matches_exact_attention_on_cpu(shape, precision):
    _flex_or_skip(precision)
    *dims, causal = shape
    q, k, v = [t.to(DTYPES[precision]) for t in random_qkv(*dims)]
    out = registry.get("attention", "flex").fn(q, k, v, causal=causal)
    assert out.dtype == q.dtype
    assert max_rel_err(out, attention_fp64(q, k, v, causal=causal)) < TOLERANCE[precision]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_flex_window_matches_its_masked_reference_and_differs_from_exact(shape, precision):
    _flex_or_skip(precision)
    *dims, causal = shape
    q, k, v = [t.to(DTYPES[precision]) for t in random_qkv(*dims, seed=1)]
    out = registry.get("attention", "flex_window").fn(q, k, v, causal=causal, window=4)
    expected = registry.get("attention", "flex_window_reference").fn(
        q.double(), k.double(), v.double(), causal=causal, window=4)
    assert max_rel_err(out, expected) < TOLERANCE[precision]
    if dims[4] > 4:  # more keys than the window: dropping them must show
        assert max_rel_err(out, attention_fp64(q, k, v, causal=causal)) > 1e-2


@pytest.mark.slow  # flex on the CPU
def test_flex_window_passes_its_op_check_against_its_own_reference():
    """Checked against exact attention it would read `wrong`; against its masked
    reference it is right, and its distance from exact attention is reported."""
    _flex_or_skip()
    params = {"batch": 1, "heads": 2, "seq_len": 40, "head_dim": 32, "causal": True, "precision": "fp32",
              "window": 8}
    metrics = prepare(make_case("op", "attention", "flex_window", axes=("seq_len",), **params)).check()
    assert metrics["within_tolerance"] == 1.0 and metrics["rel_err"] < 1e-5
    assert metrics["exact_rel_err"] > 1e-2 and metrics["exact_max_abs_err"] > 0


@pytest.mark.slow  # torch.compile of flex
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape", SHAPES)
def test_flex_and_flex_window_on_cuda_match_their_references(shape):
    *dims, causal = shape
    q, k, v = [t.cuda().half() for t in random_qkv(*dims)]
    out = registry.get("attention", "flex").fn(q, k, v, causal=causal)
    assert max_rel_err(out, attention_fp64(q, k, v, causal=causal)) < 5e-3
    out = registry.get("attention", "flex_window").fn(q, k, v, causal=causal, window=4)
    expected = registry.get("attention", "flex_window_reference").fn(
        q.double(), k.double(), v.double(), causal=causal, window=4)
    assert max_rel_err(out, expected) < 5e-3
