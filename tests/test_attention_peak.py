"""Every attention impl's peak-memory model against what it allocates.

The models (impls/attention/cost.py and each impl's file) predict the extra bytes
one call allocates at its peak, gradients included for fwd_bwd; a run reports the
measured peak over that as `peak_ratio`. Here the measurement is the CPU
allocator's own accounting (torch.profiler's memory events), which is exact and
deterministic, unlike the resident-set figure a CPU run records (that one also
holds library scratch buffers and allocator slack).
"""
from __future__ import annotations

import pytest
import torch
from torch.autograd import DeviceType

from impls import registry
from tests.conftest import make_case, prepare

SMALL = {"local": {"window": 32}, "longformer": {"window": 32, "global_tokens": 8},
         "bigbird": {"block_size": 32}, "sparse_strided": {"stride": 16}, "linformer": {"proj_k": 32},
         "flex_window": {"window": 32}}
SMALL |= {f"{name}_reference": params for name, params in list(SMALL.items())}
CAUSAL_ONLY = {"sparse_strided", "sparse_strided_reference"}
NON_CAUSAL_ONLY = {"linformer", "linformer_reference", "lra_local", "lra_local_reference", "naive_padded",
                   "padded_reference"}
FUSED = {"sdpa_flash"}  # O(N) memory: a longer sequence, so per-thread tiles do not dominate
SLOW_FIRST_CALL = {"flex", "flex_window"}
LOW, HIGH = 0.7, 1.5  # measured / model


def allocated_peak(fn) -> float:
    """Peak bytes the CPU allocator holds over one call, above what it held before."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    for event in events:
        if event.device_type() == DeviceType.CPU:
            live += event.nbytes()
            peak = max(peak, live)
    return float(peak)


def _impls() -> list:
    names = [n for n in registry.names("attention") if registry.get("attention", n).fn.__module__.startswith("impls.")]
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FIRST_CALL else n for n in names]


@pytest.mark.parametrize("direction", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("name", _impls())
def test_peak_model_matches_what_the_impl_allocates(name, direction):
    impl = registry.get("attention", name)
    precision = "int8" if "int8" in impl.precisions and name == "int8" else "fp32"
    if not registry.available(impl, "cpu", precision)[0]:
        pytest.skip(registry.available(impl, "cpu", precision)[1])
    params = {"batch": 1, "heads": 4, "kv_heads": 2, "seq_len": 2048 if name in FUSED else 256, "head_dim": 64,
              "causal": name not in NON_CAUSAL_ONLY, "direction": direction, "precision": precision,
              **SMALL.get(name, {})}
    case = make_case("op", "attention", name, axes=("seq_len",), **params)
    if direction == "fwd_bwd" and (not impl.backward or registry.refusal(impl, **params, device="cpu")):
        pytest.skip(f"{name} has no backward here")
    prepared = prepare(case)
    prepared.run()  # lazy set-up (caches, layouts) outside the measured call
    ratio = allocated_peak(prepared.run) / prepared.work["expected_peak_bytes"]
    assert LOW <= ratio <= HIGH, f"{name} {direction}: measured / model = {ratio:.2f}"
