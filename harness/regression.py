"""Regression checks that survive a noisy machine: times relative to a reference op.

A benchmark set (YAML: name, family, impl, workload, params per case) is timed
with the harness timer, each case interleaved with a fixed reference matmul so
that machine load slows both alike; a case's *normalized time* is its fastest
sample divided by the reference's fastest. A stored baseline (JSON) holds, per case, the
normalized time and the tolerance measured from repeated runs
(scripts/measure_benchmark_noise.py): tolerance = max(TOLERANCE_FLOOR,
SPREAD_FACTOR x the relative spread seen across runs). A case over its tolerance
is measured again before it fails (confirmed_regressions).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
import yaml

from harness import workloads
from harness.case import Case
from harness.suite import Measure
from harness.errors import Skip, UserError  # noqa: F401  (Skip: re-exported for tests)
from harness.executor import LocalExecutor
from harness.measure import allocator, timer
from harness.workloads.base import Prepared
from impls import registry

REFERENCE_SIZE = 256  # the reference op: a (256, 256) fp32 matmul, ~34 MFLOP
# Never gate tighter than 50%: CI runs on a fresh VM each time, and the same case read 36%
# apart on two VMs of the same kind (naive-fwd-512, 2026-11-25 against 2026-12-01).
TOLERANCE_FLOOR = 0.5
SPREAD_FACTOR = 3.0
ROUNDS = 5  # interleaved rounds per measurement
MEASURE = Measure(warmup=1, min_reps=5, max_reps=30, noise_target=0.05, max_time_s=0.1, timeout_s=60, threads=1)
SETTINGS = timer.TimerSettings(min_reps=5, max_reps=30, noise_target=0.05, max_time_s=0.05, threads=1)
# A stored baseline was measured on an idle machine; with more runnable processes than this
# per core, a case and the reference matmul slow down unlike each other (at 3.3 per core on
# the 2-core VM, mamba read 2.6x and moe 2.9x their baselines, matmul-bound cases 0.5-1.1x).
LOADED_PER_CORE = 1.5


T = TypeVar("T")


class WrongResult(AssertionError):
    """The impl failed its correctness check: timing it would be meaningless."""


@dataclass(frozen=True)
class BenchCase:
    name: str
    family: str
    impl: str
    workload: str = "op"
    params: dict[str, Any] = field(default_factory=dict)


def load_set(path: str | Path) -> list[BenchCase]:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    try:
        return [BenchCase(**entry) for entry in raw.get("cases", [])]
    except TypeError as err:
        raise UserError(f"{path}: cases: {err}; each case has name, family, impl, workload, params") from None


def build_case(family: str, impl: str, workload: str = "op", device: str = "cpu", **params: Any) -> Case:
    """The Case a suite would make for these params (no sweep axes; short timing settings)."""
    entry = registry.get(family, impl)
    model = workloads.get(workload).params_model(family)
    unknown = set(params) - set(model.model_fields) - set(entry.params)
    if unknown:
        raise UserError(f"{family}/{impl}: unknown parameter(s) {sorted(unknown)}; valid: "
                        f"{', '.join(sorted(set(model.model_fields) | set(entry.params)))}")
    # every workload param spelled out, as a suite's `fixed` would: the cost models read them all
    given = {k: v for k, v in params.items() if k in model.model_fields}
    params = model(**given).model_dump() | params
    return Case(suite="pytest", workload=workload, family=family, impl=impl, label=impl, params=params,
                impl_params=tuple(k for k in params if k in entry.params), axes=(), device=device,
                measure=MEASURE, workload_params=workloads.params_of(workload, family, params))


def prepare(case: Case) -> tuple[Prepared, dict[str, float]]:
    """Build the case through its workload and check it before anything is timed.

    Raises Skip when it cannot run here, WrongResult when it is outside tolerance."""
    impl = registry.get(case.family, case.impl)
    ok, reason = registry.available(impl, case.device, case.precision)
    if not ok:
        raise Skip(reason)
    torch.manual_seed(case.params.get("seed", 0))
    prepared = workloads.get(case.workload).prepare(case, impl)
    errors = prepared.check() if prepared.check else {}
    if not errors.get("within_tolerance", 1.0):
        raise WrongResult(f"{case.describe()}: rel_err {errors.get('rel_err')} above tolerance "
                          f"{errors.get('tolerance')}")
    return prepared, errors


def reference_op() -> Callable[[], object]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(REFERENCE_SIZE, REFERENCE_SIZE, generator=gen)
    b = torch.randn(REFERENCE_SIZE, REFERENCE_SIZE, generator=gen)
    return lambda: a @ b


def interleaved_samples(runs: dict[str, Callable[[], object]], rounds: int = ROUNDS,
                        settings: timer.TimerSettings = SETTINGS) -> dict[str, list[float]]:
    """Every sample (ms per call) of each callable, timed in alternation (a, b, a, b, ...)
    for `rounds` rounds, so that load that comes and goes touches all of them."""
    allocator.steady()  # as in a harness worker
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads or threads)
    try:
        for run in runs.values():
            run()  # first call (lazy init) outside the numbers
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                first = time.perf_counter() - start
                samples[name].extend(timer.measure(run, "cpu", settings, first))
    finally:
        torch.set_num_threads(threads)
    return samples


def interleaved_fastest(runs: dict[str, Callable[[], object]], rounds: int = ROUNDS,
                        settings: timer.TimerSettings = SETTINGS) -> dict[str, float]:
    """Fastest ms per call of each callable, timed in alternation. Load on a shared machine only
    ever adds time, so the fastest sample is the least disturbed one: on this project's 2-core
    VMs under load from other processes the median of a memory-bound case moved by 2x between
    runs where the fastest moved by 10-40% (see scripts/measure_benchmark_noise.py)."""
    return {name: min(values) for name, values in interleaved_samples(runs, rounds, settings).items()}


def remeasured(measure: Callable[[], T], holds: Callable[[T], bool], attempts: int = 3) -> T:
    """`measure()` again, up to `attempts` times in all, while `holds` is false of its result;
    the last result. A slowdown in the code repeats; a noisy neighbour rarely does, so a
    speed check fails only when every attempt fails it."""
    result = measure()
    for _ in range(attempts - 1):
        if holds(result):
            break
        result = measure()
    return result


def normalized_times(cases: list[BenchCase], rounds: int = ROUNDS) -> dict[str, float]:
    """Each case's fastest time divided by the reference matmul's, measured alongside it."""
    out = {}
    for bench in cases:
        prepared, _ = prepare(build_case(bench.family, bench.impl, bench.workload, **bench.params))
        fastest = interleaved_fastest({"case": prepared.run, "reference": reference_op()}, rounds)
        out[bench.name] = fastest["case"] / fastest["reference"]
    return out


def confirmed_regressions(baseline: dict[str, Any], cases: list[BenchCase], rounds: int = ROUNDS,
                          retries: int = 2) -> tuple[list[str], dict[str, float]]:
    """Regressions that persist: a case over its tolerance is measured again, up to `retries`
    times, and counts only if it is over every time (a slowdown in the code repeats; a noisy
    neighbour rarely does). Returns the lines and the last normalized time of every case."""
    measured = normalized_times(cases, rounds)
    for _ in range(retries):
        suspects = [bench for bench in cases if regressions(baseline, {bench.name: measured[bench.name]})]
        if not suspects:
            break
        measured |= normalized_times(suspects, rounds)
    return regressions(baseline, measured), measured


def too_loaded_for_a_stored_baseline() -> str | None:
    """Why times measured now cannot be held against a baseline stored on an idle machine
    (the 1-minute load average per core over LOADED_PER_CORE), or None."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load / cores <= LOADED_PER_CORE:
        return None
    return (f"the machine is loaded ({load:.1f} runnable on {cores} cores): times against a baseline "
            "stored on an idle machine would measure the load")


def baseline_from_runs(runs: list[dict[str, float]], environment: dict[str, Any]) -> dict[str, Any]:
    """The stored baseline: per case the median normalized time over runs and its tolerance."""
    cases = {}
    for name in dict.fromkeys(k for run in runs for k in run):  # a case added later has fewer runs
        values = [run[name] for run in runs if name in run]
        center = statistics.median(values)
        spread = (max(values) - min(values)) / center if center > 0 else 0.0
        cases[name] = {"normalized": center, "spread": spread, "runs": values,
                       "tolerance": max(TOLERANCE_FLOOR, SPREAD_FACTOR * spread)}
    return {"reference": f"fp32 matmul {REFERENCE_SIZE}x{REFERENCE_SIZE}", "rounds": ROUNDS,
            "tolerance_rule": f"max({TOLERANCE_FLOOR}, {SPREAD_FACTOR} x (max-min)/median over runs)",
            "environment": environment, "cases": cases}


def regressions(baseline: dict[str, Any], measured: dict[str, float]) -> list[str]:
    """One line per case slower than its baseline by more than its tolerance."""
    lines = []
    for name, value in measured.items():
        stored = baseline["cases"].get(name)
        if stored and value > stored["normalized"] * (1 + stored["tolerance"]):
            lines.append(f"{name}: {value / stored['normalized']:.2f}x its baseline "
                         f"(tolerance {stored['tolerance']:.0%})")
    return lines


def run_in_worker(cases: list[Case]) -> list[dict[str, Any]]:
    """Records of `cases` measured exactly as `harness run` measures them: in one isolated
    worker process (memory figures need its fresh allocator; see harness.executor)."""
    executor = LocalExecutor()
    try:
        return [executor.run(case).to_json() for case in cases]
    finally:
        executor.close()


def write_json(path: str | Path, value: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
