"""How far the harness's median agrees with torch.utils.benchmark on the same CPU work.

Three workloads of different length (tens of microseconds to tens of milliseconds),
measured alternately by both timers so they share the machine's drift; prints the
median of each and their ratio, with a harness worker's allocator settings
(harness.measure.allocator). Run it on an idle machine:

    python scripts/timer_agreement.py [--threads 2]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.utils.benchmark as tbench

from harness.measure import allocator, timer
from impls.attention.naive import naive

ROUNDS = 5


def workloads() -> dict[str, callable]:
    gen = torch.Generator().manual_seed(0)
    small = [torch.randn(128, 128, generator=gen) for _ in range(2)]
    q, k, v = (torch.randn(1, 8, 512, 64, generator=gen) for _ in range(3))
    big = [torch.randn(1024, 1024, generator=gen) for _ in range(2)]
    return {
        "matmul 128x128": lambda: small[0] @ small[1],
        "naive attention B1 H8 N512 D64": lambda: naive(q, k, v, causal=True),
        "matmul 1024x1024": lambda: big[0] @ big[1],
    }


def main() -> None:
    allocator.steady()  # as in a harness worker
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for both timers (default 1: two threads on a shared 2-core VM "
                             "time the scheduler as much as the op)")
    threads = parser.parse_args().threads
    settings = timer.TimerSettings(min_reps=10, max_reps=500, noise_target=0.01, max_time_s=2.0, threads=threads)
    print(f"{'workload':34} {'harness ms':>11} {'torch ms':>11} {'ratio':>7}")
    for name, fn in workloads().items():
        reference = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        reference.timeit(1)  # the first call (lazy init) apart
        call_s = reference.timeit(1).mean
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(float(np.median(timer.measure(fn, "cpu", settings, call_s))))
            theirs.append(reference.adaptive_autorange(threshold=0.01, max_run_time=2.0).median * 1e3)
        a, b = float(np.median(ours)), float(np.median(theirs))
        print(f"{name:34} {a:11.4f} {b:11.4f} {a / b:7.3f}")


if __name__ == "__main__":
    main()
