"""The per-operator table of a profiled pass: one row per operator (or GPU kernel) and input
shapes, in units of one call of the case (the pass makes several)."""
from __future__ import annotations

from typing import Any

from harness.profile.categories import category

PASS_MARK = "seqbench.profiled_pass"  # the annotation around the profiled calls
_NOT_OPERATORS = {PASS_MARK, "[memory]"}


def rows(averages: Any, calls: int) -> list[dict[str, Any]]:
    """Rows from torch.profiler's `key_averages(group_by_input_shape=True)`: operator, kind
    (operator or kernel), category, self and total time (ms), calls, input shapes, FLOPs and
    bytes allocated by the operator itself, each per call of the case; slowest first."""
    table = []
    for average in averages:
        if average.key in _NOT_OPERATORS or average.is_user_annotation:
            continue
        kernel = "CPU" not in str(average.device_type)
        self_us = average.self_device_time_total if kernel else average.self_cpu_time_total
        total_us = average.device_time_total if kernel else average.cpu_time_total
        allocated = average.self_device_memory_usage if kernel else average.self_cpu_memory_usage
        table.append({
            "operator": average.key, "kind": "kernel" if kernel else "operator", "category": category(average.key),
            "self_ms": self_us / 1e3 / calls, "total_ms": total_us / 1e3 / calls, "calls": average.count / calls,
            "input_shapes": str(average.input_shapes or ""), "flops": float(average.flops or 0) / calls,
            "bytes_allocated": float(max(allocated or 0, 0)) / calls,
            "device_self_ms": (average.self_device_time_total / 1e3 / calls) if not kernel else None,
        })
    return sorted(table, key=lambda row: -row["self_ms"])
