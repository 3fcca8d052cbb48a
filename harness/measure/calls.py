"""Per-call values of the timed calls, and only those.

A workload's `run` logs something about each call it makes (a generation's token
timestamps), cheaply and without summarising it there, inside the timed region. The timer
says after each block how many of the latest calls it timed: a CPU block of fast calls
starts with untimed warm-up calls, and triton's do_bench runs estimate and
warm-up calls before its timed ones, so the log keeps exactly the calls behind samples_ms.
After timing, `summarize` turns each kept call into named values: one raw sample per timed
call for each name, whose median is the metric (compare judges it like median_ms).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class CallLog:
    summarize: Callable[[Any], dict[str, float]]  # one logged call -> its values (ms, tokens/s)
    _recording: bool = False
    _pending: list[Any] = field(default_factory=list)  # logged since the timer's last block
    _timed: list[Any] = field(default_factory=list)

    def log(self, call: Any) -> None:
        """Called by the workload's run(): keep `call` if the timing loop is running."""
        if self._recording:
            self._pending.append(call)

    def start(self) -> None:
        self._recording = True
        self._pending.clear()
        self._timed.clear()

    def timed(self, calls: int) -> None:
        """The timer's word after a block: the last `calls` logged calls were timed, the
        ones logged before them in this block were its warm-up."""
        if calls > 0:
            self._timed.extend(self._pending[-calls:])
        self._pending.clear()

    def stop(self) -> dict[str, list[float]]:
        """Each name's samples, one per timed call (a call without that value adds none)."""
        self._recording = False
        samples: dict[str, list[float]] = {}
        for call in self._timed:
            for name, value in self.summarize(call).items():
                samples.setdefault(name, []).append(value)
        self._timed.clear()
        return samples

    @staticmethod
    def medians(samples: dict[str, list[float]]) -> dict[str, float]:
        """The metric of each name: the median of its per-call samples."""
        return {name: statistics.median(values) for name, values in samples.items() if values}
