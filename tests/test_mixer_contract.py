"""The mixer contract, checked for every registered mixer:
forward == prefill (from empty, and in chunks) == repeated step; causality;
state size constant for recurrent mixers."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.mixers.state import state_bytes

D_MODEL = 16
T = 12
# small, fast params for each mixer; a new mixer must be added here to be tested
SMALL_PARAMS = {
    "rnn": {}, "lstm": {}, "gru": {},
    "rnn_torch": {}, "lstm_torch": {}, "gru_torch": {},
    "attention": {"heads": 4, "kv_heads": 2, "attention": "naive"},
    "mamba": {"d_state": 4, "chunk_size": 5},
    "mamba_triton": {"d_state": 4},  # checked in triton_interpreted/selective_scan_cases.py
    "s4d": {"d_state": 8},
}
CONSTANT_STATE = {"rnn", "lstm", "gru", "rnn_torch", "lstm_torch", "gru_torch", "mamba", "s4d"}
NAMES = sorted(name for name in set(SMALL_PARAMS) & set(registry.names("mixer"))
               if registry.available(registry.get("mixer", name), "cpu", "fp32")[0])
TOLERANCE = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.bfloat16: dict(atol=3e-2, rtol=3e-2)}


def build(name: str, dtype: torch.dtype = torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    return registry.get("mixer", name).fn(D_MODEL, **SMALL_PARAMS[name]).to(dtype).eval()


def inputs(dtype: torch.dtype = torch.float32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, T, D_MODEL, generator=g).to(dtype)


def test_every_registered_mixer_is_covered():
    assert set(registry.names("mixer")) <= set(SMALL_PARAMS), "add the new mixer to SMALL_PARAMS"


def run_steps(mixer, x: torch.Tensor):
    state = mixer.init_state(x.shape[0], x.shape[1])
    ys, sizes = [], []
    for t in range(x.shape[1]):
        y, state = mixer.step(x[:, t], state)
        ys.append(y)
        sizes.append(state_bytes(state))
    return torch.stack(ys, dim=1), sizes


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_equals_prefill_equals_repeated_step(name, dtype):
    mixer, x = build(name, dtype), inputs(dtype)
    with torch.no_grad():
        y = mixer(x)
        y_prefill, _ = mixer.prefill(x, mixer.init_state(2, T))
        state = mixer.init_state(2, T)  # prefill in uneven chunks must continue correctly
        parts = []
        for lo, hi in ((0, 5), (5, 6), (6, T)):
            part, state = mixer.prefill(x[:, lo:hi], state)
            parts.append(part)
        y_steps, _ = run_steps(mixer, x)
    assert y.shape == x.shape and y.dtype == dtype
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(y_prefill.float(), y.float(), **tol)
    torch.testing.assert_close(torch.cat(parts, dim=1).float(), y.float(), **tol)
    torch.testing.assert_close(y_steps.float(), y.float(), **tol)


@pytest.mark.parametrize("name", NAMES)
def test_output_at_t_ignores_inputs_after_t(name):
    mixer, x = build(name), inputs()
    t = 6
    changed = x.clone()
    changed[:, t + 1:] = torch.randn(2, T - t - 1, D_MODEL, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        y, y_changed = mixer(x), mixer(changed)
    torch.testing.assert_close(y_changed[:, :t + 1], y[:, :t + 1], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(y_changed[:, t + 1:], y[:, t + 1:])  # later outputs do see them


@pytest.mark.parametrize("name", sorted(CONSTANT_STATE & set(NAMES)))
def test_recurrent_state_size_is_constant(name):
    mixer = build(name)
    with torch.no_grad():
        _, sizes = run_steps(mixer, inputs())
    assert sizes[0] > 0 and len(set(sizes)) == 1
