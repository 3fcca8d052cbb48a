"""triton_flash: its kernel tests run in a fresh process (TRITON_INTERPRET must be
set before triton is imported); here, what this process can say about it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from impls import registry
from impls.requirements import _importable
from tests.triton_interpreted.fresh_process import run_kernel_cases

CASES = Path(__file__).parent / "triton_interpreted" / "triton_flash_cases.py"
pytestmark = pytest.mark.skipif(not _importable("triton"), reason="triton is not installed")


@pytest.mark.slow  # a fresh interpreter process: ~20 s on a loaded 2-core machine
def test_triton_flash_kernels_match_fp64_in_their_own_process():
    run_kernel_cases(str(CASES))


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available(),
                    reason="this process can run the kernels")
def test_triton_flash_on_cpu_without_interpreter_says_how_to_enable_it():
    impl = registry.get("attention", "triton_flash")
    ok, reason = registry.available(impl, "cpu", "fp16")
    assert not ok and "TRITON_INTERPRET=1" in reason


def test_triton_flash_peak_memory_is_linear_in_sequence_length():
    peak = registry.get("attention", "triton_flash").peak_bytes  # cost.flash_peak_bytes
    params = {"batch": 1, "heads": 4, "head_dim": 64, "precision": "fp16"}
    assert peak(params | {"seq_len": 2048}) == 2 * peak(params | {"seq_len": 1024})
    assert peak(params | {"seq_len": 1024, "direction": "fwd_bwd"}) > peak(params | {"seq_len": 1024})


def _signature(fn, dtype: str, constants: dict) -> dict[str, str]:
    """Triton argument types for one of the triton_flash kernels."""
    pointers = {"Q", "K", "V", "O", "DO", "DQ", "DK", "DV"}
    types = {}
    for name in fn.arg_names:
        if name in constants:
            types[name] = "constexpr"
        elif name in pointers:
            types[name] = f"*{dtype}"
        elif name in ("LSE", "DELTA"):
            types[name] = "*fp32"
        else:
            types[name] = "fp32" if name.startswith("scale") else "i32"
    return types


@pytest.mark.slow  # three kernels through ptxas: ~10 s on a loaded CPU (fp32 would take ~50 s)
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreted kernels are not compiled")
def test_triton_flash_kernels_compile_for_hopper_without_a_gpu():
    """The interpreter accepts code a GPU compile rejects; compiling for sm_90 catches that."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from impls.attention import _triton_flash_kernels as tf

    for kernel in (tf._forward_kernel, tf._backward_kv_kernel, tf._backward_q_kernel):
        config = kernel.configs[-1]  # the smallest tiles: quickest to compile
        constants = dict(HEAD_DIM=64, BLOCK_D=64, CAUSAL=True, DOT="tf32", **config.kwargs)
        source = ASTSource(kernel.fn, _signature(kernel.fn, "fp16", constants), constexprs=constants)
        try:
            compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                      options={"num_warps": config.num_warps, "num_stages": config.num_stages})
        except RuntimeError as err:
            if "ptxas" in str(err).lower() and "not found" in str(err).lower():
                pytest.skip(f"no ptxas here: {err}")
            raise
        assert compiled.asm["cubin"]
