"""A profiled pass's time split into categories that add up to the pass.

On the CPU the timeline is the calling thread's: every operator's self time goes to its
category, and the time between top-level operators (Python, dispatch, the autograd engine's
bookkeeping) is host overhead. On a GPU the timeline is the device's: each kernel's time
goes to its category (overlapping kernels counted once), and the time the device sits idle
inside the pass, waiting for the host to launch work, is host overhead.

Both work on `Span`s, so they are tested with made-up timelines as well as real ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from harness.profile.categories import CATEGORIES, HOST, category

# The categories must add up to the pass's wall time (perf_counter around the profiled calls)
# within this fraction, plus SUM_FLOOR_MS for passes so short that entering and leaving the
# profiler's own annotation is a visible part: record_function's enter and exit are outside
# the operators but inside the wall time, a few microseconds each.
SUM_TOLERANCE = 0.05
SUM_FLOOR_MS = 0.2
# A GPU pass whose device is idle more than this share of the pass is launch-bound: the host
# cannot issue kernels as fast as the device runs them (typical of small decode steps).
LAUNCH_BOUND_IDLE_SHARE = 0.5


@dataclass
class Span:
    """An interval of the trace in microseconds: an operator (with the operators it called)
    or a kernel."""

    name: str
    start_us: float
    end_us: float
    children: list[Span] = field(default_factory=list)

    @property
    def duration_us(self) -> float:
        return max(0.0, self.end_us - self.start_us)

    @property
    def self_us(self) -> float:
        return max(0.0, self.duration_us - sum(child.duration_us for child in self.children))


def empty() -> dict[str, float]:
    return {name: 0.0 for name in CATEGORIES}


def host_timeline(pass_span: Span) -> dict[str, float]:
    """Microseconds per category of the pass: each operator's self time by its name, and the
    pass's own self time (between top-level operators) as host overhead."""
    spent = empty()
    spent[HOST] += pass_span.self_us
    stack = list(pass_span.children)
    while stack:
        span = stack.pop()
        spent[category(span.name)] += span.self_us
        stack.extend(span.children)
    return spent


def device_timeline(window: Span, kernels: Iterable[Span]) -> dict[str, float]:
    """Microseconds per category of the device's time inside `window`: kernels (and device
    copies) by name, time covered by an earlier kernel counted once, and the device's idle
    time as host overhead."""
    spent = empty()
    covered_to = window.start_us
    for kernel in sorted(kernels, key=lambda k: k.start_us):
        start, end = max(kernel.start_us, covered_to, window.start_us), min(kernel.end_us, window.end_us)
        if end > start:
            spent[category(kernel.name)] += end - start
            covered_to = end
    busy = sum(spent.values())
    spent[HOST] += max(0.0, window.duration_us - busy)
    return spent


def adds_up(spent_ms: dict[str, float], wall_ms: float) -> bool:
    """Whether the categories add up to the pass's wall time within the stated tolerance."""
    return abs(sum(spent_ms.values()) - wall_ms) <= SUM_TOLERANCE * wall_ms + SUM_FLOOR_MS


def launch_bound(spent_us: dict[str, float]) -> bool:
    """The device idle (host overhead) for more than LAUNCH_BOUND_IDLE_SHARE of the pass."""
    total = sum(spent_us.values())
    return total > 0 and spent_us[HOST] / total > LAUNCH_BOUND_IDLE_SHARE
