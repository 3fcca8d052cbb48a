"""The chunked parallel selective scan equals the sequential reference (Mamba's Algorithm 2)."""
from __future__ import annotations

import pytest
import torch

from impls.mixers.mamba import selective_scan, selective_scan_ref


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
@pytest.mark.parametrize("chunk_size", [1, 5, 64])
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
