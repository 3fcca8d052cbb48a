"""For loop-heavy workloads (generate, serve): how much of a call is Python and which Python
functions cost most, from cProfile over calls of their own (cProfile's hooks slow Python, so
it never shares a pass with torch.profiler or the timer)."""
from __future__ import annotations

import cProfile
import os
import pstats
from typing import Any, Callable

LOOP_HEAVY = ("generate", "serve")
HOTTEST = 15
# cProfile names a C function '{built-in method ...}' or '{method ... objects}'; those of
# torch's C extension are the operators (and the dispatch into them), the rest is Python.
_TORCH_C = ("torch._C", "torch._ops", "built-in method torch.", "_VariableFunctions")


def measure(run: Callable[[], object], calls: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(profile_python_share, the HOTTEST Python functions by own time per call: function,
    calls, own_ms, cumulative_ms), over `calls` calls of `run` under cProfile."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (primitive calls, calls, own s, cumulative s, callers)}
    own_total = sum(entry[2] for entry in stats.values())
    in_torch = sum(entry[2] for key, entry in stats.items() if _is_operator(key))
    python = [(key, entry) for key, entry in stats.items() if not _is_operator(key)]
    python.sort(key=lambda item: -item[1][2])
    hottest = [{"function": _name(key), "calls": entry[1] / calls, "own_ms": entry[2] * 1e3 / calls,
                "cumulative_ms": entry[3] * 1e3 / calls} for key, entry in python[:HOTTEST]]
    share = (own_total - in_torch) / own_total if own_total > 0 else 0.0
    return {"profile_python_share": share}, hottest


def _is_operator(key: tuple[str, int, str]) -> bool:
    filename, _, function = key
    return filename == "~" and any(mark in function for mark in _TORCH_C)


def _name(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function
    for root in ("site-packages/", f"{os.getcwd()}/"):  # where the file is, without this machine's prefix
        filename = filename.split(root, 1)[-1]
    return f"{filename}:{line}({function})"
