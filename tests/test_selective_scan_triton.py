"""The Triton selective-scan kernel equals the sequential reference, run under
TRITON_INTERPRET=1 on the CPU. The interpreter must be chosen before triton is
imported, and the registry imports it early, so the checks run in a fresh
subprocess (this file, executed as a script)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow  # a fresh interpreter importing torch and triton, then interpreted kernels
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_scan_and_mamba_triton_match_reference_under_interpreter():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, __file__], env=env, cwd=root, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all triton scan checks passed" in result.stdout


def check_kernel_against_reference() -> None:
    import torch

    from impls.mixers.mamba import selective_scan_ref
    from impls.mixers.selective_scan_triton import selective_scan_triton

    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        for groups, with_extras in ((None, True), (3, True), (1, False)):
            g = torch.Generator().manual_seed(0)
            batch, dim, state, length = 2, 6, 3, 7  # odd sizes exercise the masks

            def randn(*shape):
                return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

            bc = (batch, state, length) if groups is None else (batch, groups, state, length)
            args = dict(u=randn(batch, dim, length), delta=randn(batch, dim, length).abs(),
                        A=-randn(dim, state).abs(), B=randn(*bc), C=randn(*bc))
            if with_extras:
                args.update(D=randn(dim), z=randn(batch, dim, length), delta_bias=randn(dim),
                            delta_softplus=True, initial_state=randn(batch, dim, state))
            y_ref, h_ref = selective_scan_ref(**args, return_last_state=True)
            y, h = selective_scan_triton(**args, return_last_state=True, block_d=4)
            assert y.dtype == dtype
            torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
            torch.testing.assert_close(h, h_ref, atol=tol, rtol=tol)


def check_kernel_refuses_groups_not_dividing_dim() -> None:
    """Groups that do not divide dim would send channels to a group past the end of B."""
    import torch

    from impls.mixers.selective_scan_triton import selective_scan_triton

    u = torch.randn(2, 6, 5)
    for groups in (4, 7):
        B = torch.randn(2, groups, 3, 5)
        try:
            selective_scan_triton(u, u.abs(), -torch.ones(6, 3), B, B)
        except ValueError as err:
            assert "groups dividing dim=6" in str(err), err
        else:
            raise AssertionError(f"groups={groups} was accepted")


def check_mamba_triton_block() -> None:
    import torch

    from impls import registry

    torch.manual_seed(0)
    mixer = registry.get("mixer", "mamba_triton").fn(16, d_state=4)
    reference = registry.get("mixer", "mamba").fn(16, d_state=4, scan="sequential")
    reference.load_state_dict(mixer.state_dict())
    x = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = mixer(x)
        torch.testing.assert_close(y, reference(x), atol=1e-5, rtol=1e-4)
        state = mixer.init_state(2, 9)
        first, state = mixer.prefill(x[:, :4], state)
        rest, _ = mixer.prefill(x[:, 4:], state)
        torch.testing.assert_close(torch.cat((first, rest), 1), y, atol=1e-5, rtol=1e-4)


if __name__ == "__main__":
    check_kernel_against_reference()
    check_kernel_refuses_groups_not_dividing_dim()
    check_mamba_triton_block()
    print("all triton scan checks passed")
