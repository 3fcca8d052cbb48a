"""Peak memory of one call, measured in its own pass (never while timing).

CUDA: the caching allocator's peak, reset before the pass, as total and as
extra over what was allocated before the call (the inputs); plus NVML's view
of this process where pynvml works (it includes the CUDA context and cache).
CPU: this process's peak resident set for the pass alone (Linux resets the
high-water mark through /proc/self/clear_refs), total and extra. glibc serves
allocations below its mmap threshold from memory it already holds, invisible to
the high-water mark, so the pass trims the heap, lowers the threshold to 64 KiB and
restores the steady 32 MiB afterwards (measure.allocator; timing never runs with the
low threshold), and runs in a thread of its own, whose glibc arena holds none of
the blocks timing freed (see _cpu_peak).
"""
from __future__ import annotations

import gc
import os
import statistics
import threading
from typing import Callable

import torch

from harness.measure import allocator


def peak(fn: Callable[[], object], device: str) -> dict[str, float]:
    """{'peak_bytes', 'peak_extra_bytes', ...} for one call of `fn`."""
    gc.collect()
    return _cuda_peak(fn) if device == "cuda" else _cpu_peak(fn)


def median_peak(fn: Callable[[], object], device: str, passes: int) -> tuple[dict[str, float], list[float]]:
    """The median of each figure over `passes` passes of `peak`, and every pass's
    peak_extra_bytes (its raw samples, in bytes): on the CPU the resident-set counters
    move by some KiB from pass to pass (scripts/measure_memory_noise.py)."""
    results = [peak(fn, device) for _ in range(passes)]
    keys = [key for key in results[0] if all(key in r for r in results)]
    return ({key: statistics.median(r[key] for r in results) for key in keys},
            [r["peak_extra_bytes"] for r in results if "peak_extra_bytes" in r])


def _cuda_peak(fn) -> dict[str, float]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    top = torch.cuda.max_memory_allocated()
    result = {"peak_bytes": float(top), "peak_extra_bytes": float(top - before)}
    nvml = nvml_process_bytes()
    if nvml is not None:
        result["nvml_process_bytes"] = float(nvml)
    return result


def _cpu_peak(fn) -> dict[str, float]:
    """The pass runs in a thread of its own: glibc gives a new thread its own arena, which has
    never held the large blocks timing freed. In the calling thread an allocation could reuse
    one of those (still in the heap's free lists, its pages trimmed), making it resident again
    and keeping it so after its free, and the pass read several blocks that were never alive
    together: naive attention, N=1024, forward and backward, read 51-131 MiB in one worker,
    and 50.7 MiB in every pass of every worker from its own thread."""
    result: dict[str, float] = {}
    failure: list[BaseException] = []

    def measure() -> None:
        try:
            result.update(_cpu_pass(fn))
        except BaseException as err:  # raised again in the caller, where the worker records it
            failure.append(err)

    thread = threading.Thread(target=measure, name="memory-pass")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result


def _cpu_pass(fn) -> dict[str, float]:
    with allocator.small_mmap_threshold():
        if not _reset_high_water_mark():
            return {}  # no per-pass high-water mark on this OS: report nothing rather than a wrong figure
        before = _status_kib("VmRSS")
        fn()
        top = _status_kib("VmHWM")
    return {"peak_bytes": top * 1024.0, "peak_extra_bytes": max(top - before, 0) * 1024.0}


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def nvml_process_bytes() -> int | None:
    """GPU memory NVML attributes to this process, or None where NVML is unavailable."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid():
                return int(proc.usedGpuMemory or 0)
    except Exception:  # pynvml missing, or no NVML permission (containers): not measurable here
        return None
    return None
