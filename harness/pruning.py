"""Budget pruning: once an impl fails at a size, its larger sizes are not tried.

A case that ran out of memory, timed out, or whose single call took longer
than the suite's per-case budget "dominates" every later case of the same impl that equals it on all
non-size params and is at least as large on every numeric swept axis (and on the
ordered ones: fwd_bwd over fwd, non-causal over causal): those are recorded as
skipped, with the failure that pruned them.

A case is also skipped before it runs when a smaller case of its impl already
shows it would break the budget: every workload here does at least linear work in
each of the SIZE_AXES, so (time measured) x (product of the size ratios) is a lower
bound on its call time. That saves running the one over-budget case of each curve,
which is the most expensive case of it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

PRUNING_STATUSES = ("oom", "timeout")
# Categorical axes whose values are ordered by the work they imply, least first.
ORDERED = {"direction": ("fwd", "fwd_bwd"), "causal": (True, False)}
# Axes along which every workload's work grows at least linearly.
SIZE_AXES = ("seq_len", "kv_len", "batch", "heads", "head_dim", "d_model", "n_layers", "prompt_len", "new_tokens")


class Pruner:
    def __init__(self, budget_s: float | None = None):
        self.budget_s = budget_s
        # by impl label: only cases of the same impl can dominate each other
        self._failures: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        self._measured: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def observe(self, record: dict[str, Any]) -> None:
        failures = self._failures[record["label"]]
        if record["status"] in PRUNING_STATUSES:
            failures.append((record, record["status"]))
        elif self.budget_s and record["status"] in ("ok", "wrong"):
            if _call_s(record) > self.budget_s:
                failures.append((record, f"one call over the {self.budget_s:g} s budget ({_call_s(record):.2f} s)"))
            else:
                self._measured[record["label"]].append(record)

    def reason(self, label: str, params: dict[str, Any], axes: list[str] | tuple[str, ...]) -> str | None:
        for failed, why in self._failures.get(label, ()):
            larger = _larger_axes(failed, label, params, axes)
            if larger:
                where = ", ".join(f"{a}={failed['params'][a]}" for a in larger)
                return f"pruned: {why} at {where}"
        return self._predicted_over_budget(label, params, axes)

    def _predicted_over_budget(self, label: str, params: dict[str, Any], axes) -> str | None:
        for measured in reversed(self._measured.get(label, ())):  # the latest is usually the nearest in size
            larger = _larger_axes(measured, label, params, axes)
            if not larger or any(a not in SIZE_AXES for a in larger):
                continue
            growth = math.prod(params[a] / measured["params"][a] for a in larger)
            predicted = _call_s(measured) * growth
            if predicted > self.budget_s:
                where = ", ".join(f"{a}={measured['params'][a]}" for a in larger)
                return (f"pruned: at least {predicted:.2f} s per call predicted over the {self.budget_s:g} s "
                        f"budget ({_call_s(measured):.2f} s at {where}, time at least linear in size)")
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
        rank = _rank(key, value), _rank(key, old)
        if key in axes and None not in rank:
            value, old = rank
        if key in axes and _is_size(value) and _is_size(old):
            if value < old:
                return []
            if value > old:
                larger.append(key)
        elif value != old:
            return []
    return larger


def _rank(key: str, value: Any) -> int | None:
    order = ORDERED.get(key, ())
    return order.index(value) if value in order else None


def _is_size(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
