"""Adaptive timing of a zero-argument callable, with every sample kept.

Samples come from well-kept timers: on CUDA `triton.testing.do_bench` (device
events, L2 flushed between calls); on the CPU the standard library's `timeit`
(threads pinned) over blocks of about 10 ms, sized from a warm call: the first
calls after each block's setup run slower (a 32 us matmul read 38 us in blocks
of 10 calls, 32 us from 50 up), and 1 ms blocks read fast ops 3-11% above
torch.utils.benchmark's own blocks. A block of fast calls starts with two untimed
ones, as torch.utils.benchmark's Timer.timeit does before every block; a block of
slow calls does not: there the two would double or triple the time a case takes
(a one-second generate sampled at three seconds each) for a warm-up the calls
already had. One stopping rule for both: keep sampling until the median's 95% CI
is within `noise_target`, bounded by min/max samples and a time cap.
"""
from __future__ import annotations

import math
import time
import timeit
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

from harness.measure.stats import precise_enough

BLOCK_TARGET_S = 1e-2  # CPU: aim for blocks of about 10 ms of work
BLOCK_WARMUP_CALLS = 2  # untimed calls before a block of fast calls
WARMED_BLOCK_MIN_CALLS = 20  # ... where they cost at most a tenth of the block


@dataclass(frozen=True)
class TimerSettings:
    min_reps: int = 5
    max_reps: int = 200
    noise_target: float = 0.02
    max_time_s: float = 1.0
    threads: int | None = None


def measure(fn: Callable[[], object], device: str, settings: TimerSettings,
            call_s: float, after_block: Callable[[], None] | None = None,
            timed_calls: Callable[[int], None] | None = None) -> list[float]:
    """Per-call times of `fn` in ms; `call_s`, a warm call's time (already measured), sizes
    CPU blocks (a cold first call can be 10x slower, and would make blocks too short).
    `after_block` is called after each block (to look at the machine, never at `fn`);
    `timed_calls(n)` after each block too: the last n calls of `fn` were the timed ones
    (the calls before them in the block were the timer's own warm-up)."""
    if device == "cuda":
        sample, calls_per_sample = _cuda_sampler(fn), 1
    else:
        sample, calls_per_sample = _cpu_sampler(fn, settings, call_s)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < settings.max_reps:
        block = sample()
        samples.extend(block)
        if timed_calls:
            timed_calls(len(block) * calls_per_sample)
        if after_block:
            after_block()
        elapsed = time.perf_counter() - start
        if len(samples) >= settings.min_reps and (
            precise_enough(samples, settings.noise_target) or elapsed >= settings.max_time_s):
            break
    return samples[: settings.max_reps]


def _torch_timer(fn, **options: int):
    """torch.utils.benchmark's Timer of `fn()`, imported here: the runner imports this module and
    does not need the quarter second it takes."""
    import torch.utils.benchmark as tbench

    return tbench.Timer(stmt="fn()", globals={"fn": fn}, **options)


def _cpu_sampler(fn, settings: TimerSettings, call_s: float) -> tuple[Callable[[], list[float]], int]:
    """A block's sampler (one sample: the mean of `number` calls) and `number`."""
    threads = settings.threads or torch.get_num_threads()
    timer = timeit.Timer(fn, timer=time.perf_counter)
    number = max(1, math.ceil(BLOCK_TARGET_S / max(call_s, 1e-9)))
    warmup = BLOCK_WARMUP_CALLS if number >= WARMED_BLOCK_MIN_CALLS else 0

    def block() -> list[float]:
        with _torch_threads(threads):
            if warmup:
                timer.timeit(warmup)
            return [timer.timeit(number) / number * 1e3]

    return block, number


@contextmanager
def _torch_threads(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cuda_sampler(fn) -> Callable[[], list[float]]:
    try:
        from triton.testing import do_bench
    except ImportError:  # no triton: torch's timer synchronises CUDA itself
        timer = _torch_timer(fn)
        return lambda: [timer.timeit(1).mean * 1e3]
    return lambda: list(do_bench(fn, warmup=1, rep=20, return_mode="all"))
