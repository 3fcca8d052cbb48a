"""Whether other processes shared the CPU while a case was timed.

On a shared machine a single-threaded op on its own core still read 1.1-1.8x slower
from one run to the next (the other job's use of the shared caches and memory), with
nothing in the op's own samples or scheduling to show it. What can be seen is that
something else was running: /proc/stat's procs_running, read after each timing block,
less the case's own threads. compare leaves the times of such cases unjudged.
"""
from __future__ import annotations

import statistics


class Probe:
    """Counts, after each timing block, the runnable tasks that are not the case's own."""

    def __init__(self, own_threads: int):
        self.own_threads = own_threads
        self.counts: list[int] = []

    def sample(self) -> None:
        running = _procs_running()
        if running is not None:
            self.counts.append(max(0, running - self.own_threads))

    def others(self) -> dict[str, float]:
        """{'other_processes': median over blocks}, or {} where /proc/stat cannot be read."""
        return {"other_processes": float(statistics.median(self.counts))} if self.counts else {}


def _procs_running() -> int | None:
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("procs_running"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
