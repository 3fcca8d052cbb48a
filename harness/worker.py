"""What a worker process does with one case, start to finish.

registry lookup -> availability -> build -> check vs reference -> first call
-> warm-up -> timing -> memory (separate pass) -> workload stats -> record.
Every outcome, including the impl's own exceptions, becomes a record.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable

import torch

from harness import metrics as catalogue, workloads
from harness.case import Case
from harness.errors import SKIPPED, Skip
from harness.measure import calibrate, contention, gpu, memory, timer
from harness.measure.stats import summarize
from impls import registry


def execute(case: Case) -> dict[str, Any]:
    """Run one case in this process and return its record (without env_id)."""
    start = time.perf_counter()
    record = base_record(case)
    try:
        record.update(_measure(case))
    except SKIPPED as why:
        record.update(status="skipped", reason=str(why))
    except torch.OutOfMemoryError as err:
        record.update(status="oom", reason=_first_line(err))
    except MemoryError as err:  # Python's own allocations, or the worker's memory limit
        said = str(err).strip()
        record.update(status="oom", reason=f"MemoryError: {said.splitlines()[0] if said else 'out of memory'}",
                      detail=_trace())
    except RuntimeError as err:
        oom = "out of memory" in str(err).lower() or "can't allocate memory" in str(err).lower()
        record.update(status="oom" if oom else "error", reason=_first_line(err), detail=_trace())
    except Exception as err:  # an impl's bug must not stop the run: record it whole
        record.update(status="error", reason=f"{type(err).__name__}: {_first_line(err)}", detail=_trace())
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()
    record["worker_s"] = time.perf_counter() - start
    return record


def base_record(case: Case) -> dict[str, Any]:
    return {"case_id": case.id, "index": case.index, "suite": case.suite, "workload": case.workload,
            "family": case.family, "impl": case.impl, "label": case.label, "device": case.device,
            "axes": list(case.axes), "params": case.params, "status": "ok", "reason": "",
            "metrics": {}, "samples_ms": [], "memory_samples_bytes": []}


def _measure(case: Case) -> dict[str, Any]:
    impl = registry.get(case.family, case.impl)
    ok, reason = registry.available(impl, case.device, case.precision)
    if not ok:
        raise Skip(reason)
    settings = case.measure
    if settings.get("threads"):
        torch.set_num_threads(settings["threads"])
    torch.manual_seed(case.params.get("seed", 0))
    prepared = workloads.get(case.workload).prepare(case, impl)
    metrics: dict[str, float] = {"threads": float(torch.get_num_threads())}
    status, reason = "ok", ""
    if settings.get("check", True) and prepared.check:
        metrics.update(prepared.check())
        if not metrics.get("within_tolerance", 1.0):
            status = "wrong"
            reason = f"error {metrics.get('rel_err', float('nan')):.2e} above tolerance {metrics.get('tolerance', 0):.1e}"
    sync = torch.cuda.synchronize if case.device == "cuda" else _nothing
    gpu_before = gpu.snapshot() if case.device == "cuda" else None
    samples: list[float] = []
    memory_samples: list[float] = []
    if prepared.timed:
        metrics.update(_warm_up(prepared.run, sync, settings["warmup"]))
        timing_start = time.perf_counter()
        probe = contention.Probe(torch.get_num_threads())
        samples = timer.measure(prepared.run, case.device, _timer_settings(settings),
                                call_s=metrics["warm_call_ms"] / 1e3,
                                after_block=probe.sample if case.device == "cpu" else None)
        metrics["timing_s"] = time.perf_counter() - timing_start
        metrics.update(probe.others())
        metrics.update(summarize(samples, settings["noisy_above"]).as_dict())
        peaks, memory_samples = memory.median_peak(prepared.run, case.device, settings["memory_passes"])
        metrics.update(peaks)
    if prepared.stats:
        metrics.update(prepared.stats())
    metrics.update(prepared.work)
    metrics.update(_rates(metrics, case.precision, settings.get("ceilings")))
    metrics.update(gpu.around(gpu_before, gpu.snapshot() if gpu_before else None))
    catalogue.check(metrics)  # a metric the catalogue does not know is a bug of its producer
    return {"status": status, "reason": reason, "metrics": metrics, "samples_ms": samples,
            "memory_samples_bytes": memory_samples}


def _warm_up(run: Callable[[], object], sync: Callable[[], None], calls: int) -> dict[str, float]:
    """Time the first call (compile, autotune, lazy init) apart, then warm up."""
    t = time.perf_counter()
    run()
    sync()
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(calls):
        run()
    sync()
    warm = time.perf_counter() - t
    return {"first_call_ms": first * 1e3, "warmup_s": first + warm,
            "warm_call_ms": (warm / calls if calls else first) * 1e3}


def _nothing() -> None:
    pass


def _timer_settings(settings: dict[str, Any]) -> timer.TimerSettings:
    return timer.TimerSettings(min_reps=settings["min_reps"], max_reps=settings["max_reps"],
                               noise_target=settings["noise_target"], max_time_s=settings["max_time_s"],
                               threads=settings.get("threads"))


def _rates(metrics: dict[str, float], precision: str = "fp32",
           ceilings: dict[str, Any] | None = None) -> dict[str, float]:
    """Throughputs from the median time and the analytic work per call, and their
    percent of this device's calibrated ceilings when the runner passed them."""
    median_s = metrics.get("median_ms", 0) / 1e3
    if median_s <= 0:
        return {}
    rates = {}
    if metrics.get("flops"):
        rates["tflops"] = metrics["flops"] / median_s / 1e12
    if metrics.get("bytes_moved"):
        rates["gbps"] = metrics["bytes_moved"] / median_s / 1e9
    if metrics.get("tokens"):
        rates["tokens_per_s"] = metrics["tokens"] / median_s
    if metrics.get("expected_peak_bytes") and metrics.get("peak_extra_bytes") is not None:
        rates["peak_ratio"] = metrics["peak_extra_bytes"] / metrics["expected_peak_bytes"]
    if ceilings:
        rates.update(calibrate.fractions(rates, precision, ceilings))
    return rates


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _trace() -> str:
    return traceback.format_exc(limit=8)[-4000:]
