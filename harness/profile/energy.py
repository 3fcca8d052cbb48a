"""Energy per call on NVIDIA GPUs, from NVML's total energy counter (millijoules since the
driver loaded; Volta and later).

The counter is read around back-to-back calls of the case, in a pass of their own after
timing, rather than around the timed region: the CUDA timer flushes L2 between calls (a
256 MB write each time) and pauses between blocks, which the counter would charge to the
case. The counter updates every few tens of milliseconds, so the pass runs for at least
ENERGY_PASS_S.
"""
from __future__ import annotations

import math
import time
from typing import Callable

ENERGY_PASS_S = 1.0
MAX_CALLS = 10_000


def counter() -> Callable[[], float] | None:
    """A reader of the current GPU's energy counter in joules, or None without NVML or a
    driver that counts energy."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception:  # no pynvml, no NVML access, or a GPU before Volta
        return None
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3


def measure(run: Callable[[], object], sync: Callable[[], None], call_ms: float,
            work: dict[str, float], read: Callable[[], float] | None) -> dict[str, float]:
    """profile_energy_* metrics: joules per call, per token and per FLOP (where the case
    counts them) and the mean power (W), over calls lasting about ENERGY_PASS_S; {} without
    a counter."""
    if read is None:
        return {}
    calls = min(MAX_CALLS, max(1, math.ceil(ENERGY_PASS_S * 1e3 / max(call_ms, 1e-6))))
    sync()
    joules_before, start = read(), time.perf_counter()
    for _ in range(calls):
        run()
    sync()
    seconds, joules = time.perf_counter() - start, read() - joules_before
    per_call = joules / calls
    out = {"profile_energy_j_per_call": per_call, "profile_power_w": joules / seconds if seconds > 0 else math.nan}
    for key, metric in (("tokens", "profile_energy_j_per_token"), ("flops", "profile_energy_j_per_flop")):
        if work.get(key):
            out[metric] = per_call / work[key]
    return out
