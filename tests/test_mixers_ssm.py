"""Mamba and S4D specifics beyond the shared mixer contract."""
from __future__ import annotations

import math

import pytest
import torch

from impls import registry


def x_of(t: int = 14, d: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, t, d, generator=torch.Generator().manual_seed(seed))


def test_mamba_chunked_and_sequential_scans_give_the_same_block():
    torch.manual_seed(0)
    chunked = registry.get("mixer", "mamba").fn(16, d_state=4, chunk_size=4)
    sequential = registry.get("mixer", "mamba").fn(16, d_state=4, scan="sequential")
    sequential.load_state_dict(chunked.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(chunked(x_of()), sequential(x_of()), atol=1e-5, rtol=1e-4)


def test_mamba_conv_state_is_the_last_inputs_and_A_is_negative():
    torch.manual_seed(0)
    mamba = registry.get("mixer", "mamba").fn(16, d_state=4, d_conv=4)
    x = x_of(t=6)
    with torch.no_grad():
        _, state = mamba.prefill(x, mamba.init_state(2, 6))
        conv_inputs = mamba.in_proj(x)[..., :mamba.d_inner].transpose(1, 2)  # (B, d_inner, T)
    torch.testing.assert_close(state.conv, conv_inputs[..., -3:])
    assert state.ssm.shape == (2, 32, 4) and state.ssm.dtype == torch.float32
    assert (mamba._A() < 0).all()  # a decay, so the recurrence is stable


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("output", ["glu", "gelu"])
def test_s4d_fft_convolution_equals_recurrence(init, output):
    torch.manual_seed(0)
    s4d = registry.get("mixer", "s4d").fn(16, d_state=8, init=init, output=output).double()
    x = x_of(t=20).double()
    with torch.no_grad():
        y = s4d(x)
        state, steps = s4d.init_state(2, 20), []
        for t in range(20):
            y_t, state = s4d.step(x[:, t], state)
            steps.append(y_t)
    assert state.dtype == torch.complex128
    torch.testing.assert_close(torch.stack(steps, 1), y, atol=1e-10, rtol=1e-9)


def test_s4d_init_sets_the_documented_eigenvalues():
    lin = registry.get("mixer", "s4d").fn(4, d_state=8, init="lin")
    inv = registry.get("mixer", "s4d").fn(4, d_state=8, init="inv")
    torch.testing.assert_close(-lin.log_A_real.exp(), torch.full((4, 4), -0.5))
    torch.testing.assert_close(lin.A_imag[0], math.pi * torch.arange(4.0))
    expected_inv = 8 / math.pi * (8 / (2 * torch.arange(4.0) + 1) - 1)
    torch.testing.assert_close(inv.A_imag[0], expected_inv)
