"""selective_scan_triton: its kernel tests run in a fresh process (TRITON_INTERPRET must be
set before triton is imported); here, what this process can say about it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from impls import models, registry, requirements
from impls.models import presets
from impls.requirements import _importable
from tests.test_gradients import FAMILIES
from tests.triton_interpreted.fresh_process import run_kernel_cases

TESTS = Path(__file__).parent
CASES = TESTS / "triton_interpreted" / "selective_scan_cases.py"
pytestmark = pytest.mark.skipif(not _importable("triton"), reason="triton is not installed")


def _gradient_cases_of_triton_impls() -> list[str]:
    """test_gradients.py's cases for the registered impls that need triton (from the registry)."""
    return [f"{TESTS / 'test_gradients.py'}::test_one_backward_gives_every_parameter_a_gradient[{family}-{name}]"
            for family in FAMILIES for name in registry.names(family)
            if requirements.triton in registry.get(family, name).requires]


@pytest.mark.slow  # a fresh interpreter process: ~25 s on a loaded 2-core machine
def test_triton_scan_forward_and_backward_match_the_reference_in_their_own_process():
    gradient_cases = _gradient_cases_of_triton_impls()
    assert gradient_cases, "mamba_triton (at least) needs triton"
    run_kernel_cases(str(CASES), *gradient_cases)


@pytest.mark.slow  # two kernels, two dtypes through ptxas: ~3 s
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="interpreted kernels are not compiled")
def test_triton_scan_kernels_compile_for_hopper_without_a_gpu():
    """The interpreter accepts code a GPU compile rejects; compiling for sm_90 catches that."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from impls.mixers import _selective_scan_triton as scan

    for kernel in (scan._scan_kernel, scan._scan_backward_kernel):
        for dtype in ("fp32", "fp64"):
            flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, BLOCK_D=16, BLOCK_N=16)
            if "SAVE" in kernel.arg_names:
                flags["SAVE"] = True
            signature = {name: "constexpr" if name in flags else f"*{dtype}" if name.endswith("_ptr") else "i32"
                         for name in kernel.arg_names}
            try:
                compiled = triton.compile(ASTSource(kernel, signature, constexprs=flags),
                                          target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
            except RuntimeError as err:
                if "ptxas" in str(err).lower() and "not found" in str(err).lower():
                    pytest.skip(f"no ptxas here: {err}")
                raise
            assert compiled.asm["cubin"], (kernel.__name__, dtype)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available(),
                    reason="this process can run the kernels")
def test_mamba_triton_on_cpu_without_interpreter_says_how_to_enable_it():
    ok, reason = registry.available(registry.get("mixer", "mamba_triton"), "cpu", "fp32")
    assert not ok and "TRITON_INTERPRET=1" in reason
    # the mamba model with the Triton scan is skipped with the same reason, not run into an error
    assert "TRITON_INTERPRET=1" in presets.unavailable(models.config("mamba", "model", scan="triton"), "cpu", "fp32")
    assert presets.unavailable(models.config("mamba", "model"), "cpu", "fp32") is None
