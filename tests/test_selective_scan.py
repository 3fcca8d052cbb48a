"""The chunked parallel selective scan equals the sequential reference (Mamba's Algorithm 2),
and every scan checks its arguments' shapes up front."""
from __future__ import annotations

import pytest
import torch

from impls.mixers.mamba import selective_scan, selective_scan_ref
from impls.mixers.selective_scan import LOG_RANGE, stable_chunk


def random_scan_inputs(dtype=torch.float64, batch=2, dim=6, state=4, length=19, groups=None, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    bc_shape = (batch, state, length) if groups is None else (batch, groups, state, length)
    return dict(u=randn(batch, dim, length), delta=randn(batch, dim, length),
                A=-torch.rand(dim, state, generator=g, dtype=torch.float64).to(dtype) * 3,
                B=randn(*bc_shape), C=randn(*bc_shape), D=randn(dim), z=randn(batch, dim, length),
                delta_bias=randn(dim), delta_softplus=True)


@pytest.mark.parametrize("groups", [None, 1, 3])
@pytest.mark.parametrize("chunk_size", [1, 2, 5, 64])
def test_chunked_scan_matches_sequential_reference(groups, chunk_size):
    args = random_scan_inputs(groups=groups)
    h0 = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y_ref, h_ref = selective_scan_ref(**args, initial_state=h0, return_last_state=True)
    y, h = selective_scan(**args, initial_state=h0, return_last_state=True, chunk_size=chunk_size)
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h, h_ref, atol=1e-10, rtol=1e-10)


def test_chunked_scan_in_fp32_and_bf16_stays_close_and_keeps_dtype():
    args64 = random_scan_inputs(length=24)
    y64 = selective_scan_ref(**args64)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 5e-2)):
        args = {k: v.to(dtype) if torch.is_tensor(v) else v for k, v in args64.items()}
        y = selective_scan(**args, chunk_size=8)
        assert y.dtype == dtype
        torch.testing.assert_close(y.double(), y64, atol=tol, rtol=tol)


def test_strong_decay_does_not_overflow_the_chunked_form():
    """Large dt*|A| makes exp(-cumsum) overflow in a naive cumsum trick; differences must not."""
    args = random_scan_inputs(dtype=torch.float32, length=24)
    args["A"] = args["A"] * 100
    y = selective_scan(**args, chunk_size=24)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, selective_scan_ref(**args), atol=1e-4, rtol=1e-4)


def test_scan_with_no_inputs_but_state_decays_that_state():
    """Zero u, C = 1, A = -1, dt = 1 (no softplus): y_t = sum_n h0[n] * e^-(t+1)."""
    h0 = torch.ones(1, 2, 3, dtype=torch.float64)
    ones = torch.ones(1, 3, 4, dtype=torch.float64)
    y = selective_scan(torch.zeros(1, 2, 4, dtype=torch.float64), torch.ones(1, 2, 4, dtype=torch.float64),
                       -torch.ones(2, 3, dtype=torch.float64), ones, ones, initial_state=h0)
    expected = 3 * torch.exp(-torch.arange(1.0, 5.0, dtype=torch.float64))
    torch.testing.assert_close(y[0, 0], expected)


def test_chunks_shrink_until_the_decay_inside_each_fits_the_log_range():
    """A decay of 3 per step fits 13 steps in float32's range of 40: chunks of 8, not 32."""
    delta, A = torch.ones(1, 40, 2), -torch.full((2, 3), 3.0)  # time-major (batch, L, dim)
    assert stable_chunk(delta, A, 32) == 8 and 8 * 3 <= LOG_RANGE[torch.float32] < 16 * 3
    assert stable_chunk(delta.double(), A.double(), 32) == 32


def test_growth_without_softplus_matches_the_reference():
    """delta may be negative without softplus (exp(delta * A) > 1): still the same numbers."""
    args = random_scan_inputs(length=30)
    args.update(delta_softplus=False, delta_bias=None)
    torch.testing.assert_close(selective_scan(**args, chunk_size=8), selective_scan_ref(**args),
                               atol=1e-10, rtol=1e-10)


def test_gradients_of_the_chunked_scan_equal_the_references():
    args = random_scan_inputs(length=13)
    inputs = [args[name].requires_grad_() for name in ("u", "delta", "A", "B", "C", "D", "z")]
    grads = torch.autograd.grad(selective_scan(**args, chunk_size=4).square().sum(), inputs)
    expected = torch.autograd.grad(selective_scan_ref(**args).square().sum(), inputs)
    for grad, want in zip(grads, expected):
        torch.testing.assert_close(grad, want, atol=1e-10, rtol=1e-10)


BAD_SHAPES = [  # (argument, replacement shape, words the error must contain)
    ("B", (2, 4, 4, 19), r"B must be \(batch, state, L\).*groups dividing dim=6, got \(2, 4, 4, 19\)"),
    ("C", (2, 5, 19), r"C must be .*\(2, 4, 19\)"),
    ("B", (2, 0, 4, 19), r"B must be"),
    ("A", (6, 4, 1), r"A must be \(dim, state\) with dim=6"),
    ("A", (5, 4), r"A must be \(dim, state\) with dim=6"),
    ("u", (2, 6), r"u must be \(batch, dim, L\)"),
    ("delta", (2, 6, 18), r"delta must have shape \(2, 6, 19\)"),
    ("z", (1, 6, 19), r"z must have shape \(2, 6, 19\)"),
    ("D", (4,), r"D must have shape \(6,\)"),
    ("delta_bias", (6, 1), r"delta_bias must have shape \(6,\)"),
]


@pytest.mark.parametrize("scan", [selective_scan, selective_scan_ref], ids=["chunked", "sequential"])
@pytest.mark.parametrize("name, shape, message", BAD_SHAPES, ids=[f"{n}{s}" for n, s, _ in BAD_SHAPES])
def test_a_misshapen_argument_is_named_with_the_shape_it_needs(scan, name, shape, message):
    args = random_scan_inputs()
    args[name] = torch.randn(*shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        scan(**args)


def test_a_misshapen_initial_state_is_named():
    with pytest.raises(ValueError, match=r"initial_state must have shape \(2, 6, 4\)"):
        selective_scan(**random_scan_inputs(), initial_state=torch.zeros(2, 6, 3, dtype=torch.float64))
