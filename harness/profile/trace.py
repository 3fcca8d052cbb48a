"""torch.profiler's events as the Spans attribution works on."""
from __future__ import annotations

from typing import Any

from harness.profile.attribution import Span
from harness.profile.operators import PASS_MARK


def pass_span(events: Any) -> Span:
    """The annotation around the profiled calls, with every operator under it."""
    for event in events:
        if event.name == PASS_MARK and "CPU" in str(event.device_type):
            return _span(event)
    raise ValueError(f"the profile holds no '{PASS_MARK}' annotation: the pass was not recorded")


def kernels(events: Any) -> list[Span]:
    """The device's kernels, copies and sets (events on a GPU timeline)."""
    return [Span(e.name, e.time_range.start, e.time_range.end) for e in events
            if "CPU" not in str(e.device_type)]


def _span(event: Any) -> Span:
    return Span(event.name, event.time_range.start, event.time_range.end,
                [_span(child) for child in event.cpu_children])
