"""The profiled pass of one case, run in the worker after timing, never inside it.

torch.profiler records a few calls of the case (CPU and, on a GPU, CUDA activity, input
shapes, memory, FLOPs) inside one annotation, and Python stacks on request in a pass of
their own; the pass's time per
call against the timed median is the profiler's own overhead. From the trace: the Chrome
trace file, the operator table and the split into categories (attribution.py). On a GPU
also the allocator's history and, in passes of their own, the energy per call; for
generate and serve cases a cProfile pass for the Python share.
"""
from __future__ import annotations

import math
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from harness import metrics as catalogue
from harness.case import Case
from harness.profile import attribution, cuda_memory, energy, operators, python_time, store, trace
from harness.profile.categories import HOST

# Profile enough calls to fill about PASS_TARGET_MS, at most MAX_CALLS: reading the trace back
# costs far more than recording it (a tiny decode loop: 20 calls, 45k events, 0.2 s to record
# and 14 s to export and parse), so a pass stays short.
PASS_TARGET_MS = 50.0
MAX_CALLS = 5


def run_and_save(case: Case, run: Callable[[], object], median_ms: float, work: dict[str, float],
                 request: store.Request) -> None:
    """Profile `run` and write the case's profile folder. A pass that fails writes its error
    in summary.json instead: the case's timed record is never lost to its profile."""
    out_dir = store.fresh(request.out_dir)
    summary: dict[str, Any] = {"case_id": case.id, "index": case.index, "label": case.label, "impl": case.impl,
                               "workload": case.workload, "family": case.family, "device": case.device,
                               "params": case.params, "axes": list(case.axes), "timed_median_ms": median_ms}
    rows: list[dict[str, Any]] = []
    try:
        found, rows = profile_calls(case, run, median_ms, work, out_dir, request.with_stack)
        summary.update(found)
        catalogue.check(summary["metrics"])
    except Exception as err:  # recorded beside the record, which stays as timed
        summary["error"] = f"{type(err).__name__}: {err}"
        summary["detail"] = traceback.format_exc(limit=8)[-4000:]
    store.write(out_dir, summary, rows)


def profile_calls(case: Case, run: Callable[[], object], median_ms: float, work: dict[str, float],
                  out_dir: Path, with_stack: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary's findings (metrics, categories, files, hottest Python) and operator rows."""
    cuda = case.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    calls = max(1, min(MAX_CALLS, math.ceil(PASS_TARGET_MS / max(median_ms, 1e-6))))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    memory_history = cuda_memory.history(out_dir / store.MEMORY_SNAPSHOT) if cuda else nullcontext()
    with memory_history, profile(activities=activities, record_shapes=True, profile_memory=True,
                                 with_flops=True) as prof:
        sync()
        start = time.perf_counter()
        with record_function(operators.PASS_MARK):
            for _ in range(calls):
                run()
            sync()
        wall_ms = (time.perf_counter() - start) * 1e3
    prof.export_chrome_trace(str(out_dir / store.TRACE))
    files = {"trace": store.TRACE} | ({"memory_snapshot": store.MEMORY_SNAPSHOT} if cuda else {})
    if with_stack:
        _stacks(run, sync, activities, calls, out_dir / store.STACKS)
        files["stacks"] = store.STACKS
    found = _attributed(prof.events(), cuda, calls, wall_ms, median_ms)
    hottest: list[dict[str, Any]] = []
    if case.workload in python_time.LOOP_HEAVY:
        python_share, hottest = python_time.measure(run, calls)
        found["metrics"].update(python_share)
    if cuda:
        found["metrics"].update(energy.measure(run, sync, median_ms, work, energy.counter()))
    found |= {"python_hottest": hottest, "files": files}
    return found, operators.rows(prof.key_averages(group_by_input_shape=True), calls)


def _attributed(events: Any, cuda: bool, calls: int, wall_ms: float, median_ms: float) -> dict[str, Any]:
    """The time per call by category (the device's timeline on a GPU, the host's on a CPU),
    whether it adds up to the pass, and the profile_* metrics."""
    window = trace.pass_span(events)
    spent_us = (attribution.device_timeline(window, trace.kernels(events)) if cuda
                else attribution.host_timeline(window))
    categories_ms = {name: us / 1e3 / calls for name, us in spent_us.items()}
    metrics = _metrics(categories_ms, wall_ms / calls, median_ms, calls)
    if cuda:
        metrics["profile_launch_bound"] = float(attribution.launch_bound(spent_us))
    return {"metrics": metrics, "categories_ms": categories_ms, "calls": calls,
            "adds_up": attribution.adds_up(categories_ms, wall_ms / calls),
            "tolerance": {"fraction": attribution.SUM_TOLERANCE, "floor_ms": attribution.SUM_FLOOR_MS}}


def _stacks(run: Callable[[], object], sync: Callable[[], None], activities: list, calls: int, path: Path) -> None:
    """Self time per Python stack, from a pass of its own: torch 2.13 cannot read back a trace
    recorded with stacks, shapes and memory together (UnicodeDecodeError on an event's name),
    and stacks slow every call, which would inflate the main pass's overhead."""
    verbose = torch._C._profiler._ExperimentalConfig(verbose=True)  # else the events keep no stacks
    with profile(activities=activities, with_stack=True, experimental_config=verbose) as prof:
        for _ in range(calls):
            run()
        sync()
    prof.export_stacks(str(path), "self_device_time_total" if len(activities) > 1 else "self_cpu_time_total")


def _metrics(categories_ms: dict[str, float], per_call_ms: float, median_ms: float, calls: int) -> dict[str, float]:
    attributed = sum(categories_ms.values())
    metrics = {f"profile_{name}_ms": ms for name, ms in categories_ms.items()}
    metrics.update({"profile_calls": float(calls), "profile_call_ms": per_call_ms,
                    "profile_overhead_ratio": per_call_ms / median_ms if median_ms > 0 else math.nan,
                    "profile_host_share": categories_ms[HOST] / attributed if attributed > 0 else math.nan})
    return metrics
