"""What a worker process does with one case, start to finish.

registry lookup -> availability -> build -> check vs reference -> first call
-> warm-up -> timing -> memory (separate pass) -> workload stats -> Record.
Every outcome, including the impl's own exceptions, becomes a Record.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable

import torch

from harness import metrics as catalogue, workloads
from harness.case import Case, Measure
from harness.errors import SKIPPED, Skip
from harness.measure import ceilings as calibrations, contention, energy, gpu, memory, timer
from harness.measure.calls import CallLog
from harness.profile import store as profiles
from harness.record import Record, Timing
from harness.workloads.base import Prepared
from impls import registry


def execute(case: Case, ceilings: dict[str, Any] | None = None, profile: profiles.Request | None = None) -> Record:
    """Run one case in this process and return its record. `ceilings`: this device's measured
    ceilings (harness calibrate), for the percent-of-peak metrics; `profile`: where to write a
    profiled pass after timing (harness.profile)."""
    start = time.perf_counter()
    try:
        record = _measure(case, ceilings, profile)
    except SKIPPED as why:
        record = Record.skipped(case, str(why))
    except torch.OutOfMemoryError as err:
        record = Record.oom(case, _first_line(err))
    except MemoryError as err:  # Python's own allocations, or the worker's memory limit
        said = str(err).strip()
        record = Record.oom(case, f"MemoryError: {said.splitlines()[0] if said else 'out of memory'}", _trace())
    except RuntimeError as err:
        oom = "out of memory" in str(err).lower() or "can't allocate memory" in str(err).lower()
        record = (Record.oom if oom else Record.error)(case, _first_line(err), _trace())
    except Exception as err:  # an impl's bug must not stop the run: record it whole
        record = Record.error(case, f"{type(err).__name__}: {_first_line(err)}", _trace())
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()
    return record.timed(worker_s=time.perf_counter() - start)


def _measure(case: Case, ceilings: dict[str, Any] | None, profile: profiles.Request | None = None) -> Record:
    impl = registry.get(case.family, case.impl)
    ok, reason = registry.available(impl, case.device, case.precision)
    if not ok:
        raise Skip(reason)
    settings = case.measure
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(case.params.get("seed", 0))
    prepared = workloads.get(case.workload).prepare(case, impl)
    metrics: dict[str, Any] = {"threads": float(torch.get_num_threads())}
    wrong = ""
    if settings.check and prepared.check:
        metrics.update(prepared.check())
        if not metrics.get("within_tolerance", 1.0):
            wrong = f"error {metrics.get('rel_err', float('nan')):.2e} above tolerance {metrics.get('tolerance', 0):.1e}"
    sync = torch.cuda.synchronize if case.device == "cuda" else _nothing
    gpu_before = gpu.snapshot() if case.device == "cuda" else None
    timing, memory_samples, call_samples = None, [], {}
    if prepared.timed and settings.timed:
        metrics.update(_warm_up(prepared.run, sync, settings.warmup))
        timing_start = time.perf_counter()
        samples, call_samples = _time(prepared, case.device, settings, metrics)
        metrics["timing_s"] = time.perf_counter() - timing_start
        timing = Timing.of(samples, settings.noisy_above)
        peaks, memory_samples = (prepared.memory or _worker_peak(prepared.run, case.device))(settings.memory_passes)
        metrics.update(peaks)
    if prepared.stats:
        metrics.update(prepared.stats())
    metrics.update(CallLog.medians(call_samples))  # after stats: every timed call, not the last one
    metrics.update(prepared.work)
    metrics.update(_rates(metrics, timing.summary.median_ms if timing else 0.0, case.precision, ceilings))
    metrics.update(gpu.around(gpu_before, gpu.snapshot() if gpu_before else None))
    if profile is not None and timing is not None:  # after every measured number, never inside them
        from harness.profile import profiled_pass  # torch.profiler only in workers that profile

        profiled_pass.run_and_save(case, prepared.run, timing.summary.median_ms, prepared.work, profile)
    record = Record.measured(case, metrics, timing, memory_samples, wrong, call_samples)
    catalogue.check(record.all_metrics())  # a metric the catalogue does not know is a bug of its producer
    return record


def _time(prepared: Prepared, device: str, settings: Measure,
          metrics: dict[str, Any]) -> tuple[list[float], dict[str, list[float]]]:
    """The timing loop: samples_ms, and the workload's per-call samples of the timed calls
    (CallLog); adds the contention seen and the energy of the loop (or why not) to `metrics`."""
    probe = contention.Probe(torch.get_num_threads())
    meter, calls = energy.Meter(device), prepared.calls
    if calls:
        calls.start()
    meter.start()
    samples = timer.measure(meter.counted(prepared.run), device, _timer_settings(settings),
                            call_s=metrics["warm_call_ms"] / 1e3,
                            after_block=probe.sample if device == "cpu" else None,
                            timed_calls=calls.timed if calls else None)
    metrics.update(meter.metrics(prepared.work.get("tokens")))
    metrics.update(probe.others())
    return samples, (calls.stop() if calls else {})


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


def _worker_peak(run: Callable[[], object], device: str) -> Callable[[int], tuple[dict[str, float], list[float]]]:
    return lambda passes: memory.median_peak(run, device, passes)


def _nothing() -> None:
    pass


def _timer_settings(settings: Measure) -> timer.TimerSettings:
    return timer.TimerSettings(min_reps=settings.min_reps, max_reps=settings.max_reps,
                               noise_target=settings.noise_target, max_time_s=settings.max_time_s,
                               threads=settings.threads)


def _rates(metrics: dict[str, float], median_ms: float, precision: str = "fp32",
           ceilings: dict[str, Any] | None = None) -> dict[str, float]:
    """Throughputs from the median time (0: not timed) and the analytic work per call, and
    their percent of this device's calibrated ceilings when known."""
    median_s = median_ms / 1e3
    if median_s <= 0:
        return {}
    rates = {}
    if metrics.get("flops"):
        rates["tflops"] = metrics["flops"] / median_s / 1e12
    if metrics.get("bytes_moved"):
        rates["gbps"] = metrics["bytes_moved"] / median_s / 1e9
    if metrics.get("tokens"):
        rates["tokens_per_s"] = metrics["tokens"] / median_s
    if metrics.get("chars"):
        rates["chars_per_s"] = metrics["chars"] / median_s
    if metrics.get("expected_peak_bytes") and metrics.get("peak_extra_bytes") is not None:
        rates["peak_ratio"] = metrics["peak_extra_bytes"] / metrics["expected_peak_bytes"]
    if ceilings:
        rates.update(calibrations.fractions(rates.get("tflops"), rates.get("gbps"),
                                         ceilings.get("flops", {}).get(precision) or None, ceilings.get("bytes_per_s")))
    return rates


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _trace() -> str:
    return traceback.format_exc(limit=8)[-4000:]
