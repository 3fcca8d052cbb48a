"""Budget pruning: once an impl fails at a size, its larger sizes are not tried.

A case that ran out of memory, timed out, or whose single call took longer
than the suite's per-case budget "dominates" every later case of the same impl that equals it on all
non-size params and is at least as large on every numeric swept axis: those
are recorded as skipped, with the failure that pruned them.
"""
from __future__ import annotations

from typing import Any

PRUNING_STATUSES = ("oom", "timeout")


class Pruner:
    def __init__(self, budget_s: float | None = None):
        self.budget_s = budget_s
        self._failures: list[tuple[dict[str, Any], str]] = []

    def observe(self, record: dict[str, Any]) -> None:
        if record["status"] in PRUNING_STATUSES:
            self._failures.append((record, record["status"]))
        elif self.budget_s and record["status"] in ("ok", "wrong") and _call_s(record) > self.budget_s:
            self._failures.append((record, f"one call over the {self.budget_s:g} s budget ({_call_s(record):.2f} s)"))

    def reason(self, label: str, params: dict[str, Any], axes: list[str] | tuple[str, ...]) -> str | None:
        for failed, why in self._failures:
            larger = _larger_axes(failed, label, params, axes)
            if larger:
                where = ", ".join(f"{a}={failed['params'][a]}" for a in larger)
                return f"pruned: {why} at {where}"
        return None


def _call_s(record: dict[str, Any]) -> float:
    """Seconds one call of the case takes: its median, else its first call."""
    metrics = record.get("metrics", {})
    return metrics.get("median_ms", metrics.get("first_call_ms", 0.0)) / 1e3


def _larger_axes(failed: dict[str, Any], label: str, params: dict[str, Any], axes) -> list[str]:
    """The size axes on which `params` is larger than the failed case, or [] if not dominated."""
    if failed["label"] != label or set(failed["params"]) != set(params):
        return []
    larger = []
    for key, value in params.items():
        old = failed["params"][key]
        if key in axes and _is_size(value) and _is_size(old):
            if value < old:
                return []
            if value > old:
                larger.append(key)
        elif value != old:
            return []
    return larger


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
