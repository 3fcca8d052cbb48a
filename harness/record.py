"""A Record: how one case ended, built in one place, one constructor per outcome.

A measured case keeps its timing samples with the statistics derived from them
(`Timing`, as torch.utils.benchmark's Measurement keeps its times), so a report, a
comparison or a claim can recompute from the samples. `to_json` is the one line of
records.jsonl (harness.results).
"""
from __future__ import annotations

import signal
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.case import Case
from harness.measure.stats import Summary, summarize

Status = Literal["ok", "wrong", "skipped", "oom", "timeout", "error"]


@dataclass(frozen=True)
class Timing:
    """Every timed sample (ms per call) and their summary (median, IQR, CI, noisy)."""

    samples_ms: tuple[float, ...]
    summary: Summary

    @classmethod
    def of(cls, samples_ms: list[float], noisy_above: float) -> Timing:
        return cls(tuple(samples_ms), summarize(samples_ms, noisy_above))


@dataclass(frozen=True)
class Record:
    case: Case
    status: Status
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)  # numbers (and a few lists/strings), catalogued
    timing: Timing | None = None
    memory_samples_bytes: tuple[float, ...] = ()  # each memory pass's peak_extra_bytes
    # a metric's raw samples, one per timed call, where the workload logs its calls
    # (time_to_first_token_ms, itl_p50_ms, ...: harness.measure.calls); the metric is their median
    metric_samples: dict[str, tuple[float, ...]] = field(default_factory=dict)
    detail: str | None = None  # a traceback, for errors
    worker_s: float | None = None  # time in the worker process
    wall_s: float | None = None  # time seen by the runner, start-up and transfer included
    started_at: float | None = None  # when it was sent to a ready worker (Unix time)
    env_id: str | None = None  # the env it ran in, where that is not the run's (a Ray node: harness.ray_executor)

    @classmethod
    def measured(cls, case: Case, metrics: dict[str, Any], timing: Timing | None,
                 memory_samples_bytes: list[float], wrong_because: str = "",
                 metric_samples: dict[str, list[float]] | None = None) -> Record:
        """`ok`, or `wrong` (still measured, never a speedup) when the check failed."""
        return cls(case, "wrong" if wrong_because else "ok", wrong_because, metrics, timing,
                   tuple(memory_samples_bytes),
                   {name: tuple(values) for name, values in (metric_samples or {}).items()})

    @classmethod
    def skipped(cls, case: Case, reason: str) -> Record:
        """Not run: a constraint, the impl cannot run here, pruned, or the impl refused."""
        return cls(case, "skipped", reason)

    @classmethod
    def oom(cls, case: Case, reason: str, detail: str | None = None) -> Record:
        return cls(case, "oom", reason, detail=detail)

    @classmethod
    def timeout(cls, case: Case, after_s: float) -> Record:
        return cls(case, "timeout", f"still running after {after_s:g} s; killed")

    @classmethod
    def error(cls, case: Case, reason: str, detail: str | None = None) -> Record:
        return cls(case, "error", reason, detail=detail)

    @classmethod
    def worker_died(cls, case: Case, exitcode: int | None) -> Record:
        """A worker that died mid-case: killed by SIGKILL (which the runner did not send: on Linux
        the kernel's OOM killer) is `oom`; another signal or an exit status is `error`."""
        if exitcode is not None and exitcode < 0:
            sig = signal.Signals(-exitcode).name
            if sig == "SIGKILL":
                return cls.oom(case, "worker killed by SIGKILL (most likely the kernel's OOM killer)")
            return cls.error(case, f"worker crashed with {sig}")
        return cls.error(case, f"worker exited with status {exitcode} mid-case")

    def timed(self, **seconds: float) -> Record:
        """This record with worker_s, wall_s and/or started_at set."""
        return replace(self, **seconds)

    @property
    def samples_ms(self) -> list[float]:
        return list(self.timing.samples_ms) if self.timing else []

    def all_metrics(self) -> dict[str, Any]:
        """The metrics with the timing summary among them, as records.jsonl holds them."""
        if self.timing is None:
            return dict(self.metrics)
        return {**self.metrics, **self.timing.summary.as_dict()}

    def to_json(self, env_id: str | None = None) -> dict[str, Any]:
        """The record as one line of records.jsonl."""
        case = self.case
        out: dict[str, Any] = {
            "case_id": case.id, "index": case.index, "suite": case.suite, "workload": case.workload,
            "family": case.family, "impl": case.impl, "label": case.label, "device": case.device,
            "axes": list(case.axes), "params": case.params, "status": self.status, "reason": self.reason,
            "metrics": self.all_metrics(), "samples_ms": self.samples_ms,
            "memory_samples_bytes": list(self.memory_samples_bytes)}
        if self.metric_samples:
            out["metric_samples"] = {name: list(values) for name, values in self.metric_samples.items()}
        if self.detail is not None:
            out["detail"] = self.detail
        for key in ("worker_s", "wall_s", "started_at"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if (self.env_id or env_id) is not None:
            out["env_id"] = self.env_id or env_id
        return out
