"""How far the harness's median agrees with a well-kept timer on the same work.

On the CPU the reference is torch.utils.benchmark (three workloads from tens of microseconds
to tens of milliseconds); on CUDA it is triton.testing.do_bench called once for a long
window (the harness samples do_bench in short windows until its stopping rule is met), on a
launch-bound op, a matmul and FlashAttention. Both timers measure each workload in
alternation, so they share the machine's drift; prints the median of each and their ratio,
with a harness worker's allocator settings (harness.measure.allocator). Run it on an idle
machine:

    python scripts/timer_agreement.py [--device cuda] [--threads 2] [--quick]
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.benchmark as tbench

from harness.measure import allocator, timer
from impls.attention.naive import naive


def cpu_workloads() -> dict[str, Callable[[], object]]:
    gen = torch.Generator().manual_seed(0)
    small = [torch.randn(128, 128, generator=gen) for _ in range(2)]
    q, k, v = (torch.randn(1, 8, 512, 64, generator=gen) for _ in range(3))
    big = [torch.randn(1024, 1024, generator=gen) for _ in range(2)]
    return {
        "matmul 128x128": lambda: small[0] @ small[1],
        "naive attention B1 H8 N512 D64": lambda: naive(q, k, v, causal=True),
        "matmul 1024x1024": lambda: big[0] @ big[1],
    }


def cuda_workloads() -> dict[str, Callable[[], object]]:
    gen = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device="cuda", dtype=torch.float16)

    small, big = randn(1024), [randn(8192, 8192) for _ in range(2)]
    q, k, v = (randn(4, 16, 4096, 128) for _ in range(3))
    return {
        "add 1k elements (launch-bound)": lambda: small + 1,
        "matmul 8192^3 fp16": lambda: big[0] @ big[1],
        "sdpa B4 H16 N4096 D128 fp16 causal": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    }


def cpu_reference(fn: Callable[[], object], threads: int, max_time_s: float) -> Callable[[], float]:
    """torch.utils.benchmark's adaptive median (ms)."""
    reference = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    reference.timeit(1)  # the first call (lazy init) apart
    return lambda: reference.adaptive_autorange(threshold=0.01, max_run_time=max_time_s).median * 1e3


def cuda_reference(fn: Callable[[], object], max_time_s: float) -> Callable[[], float]:
    """triton.testing.do_bench's median (ms) over one window of max_time_s."""
    from triton.testing import do_bench

    return lambda: float(do_bench(fn, warmup=25, rep=max_time_s * 1e3, return_mode="median"))


def warm_call_s(fn: Callable[[], object], device: str) -> float:
    """One warm call's time (s), after a first call, to size the harness's CPU blocks."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    return tbench.Timer(stmt="fn(); sync()", globals={"fn": fn, "sync": sync}).timeit(1).mean


def main() -> None:
    allocator.steady()  # as in a harness worker
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for both timers (default 1: two threads on a shared 2-core VM "
                             "time the scheduler as much as the op)")
    parser.add_argument("--quick", action="store_true", help="one round of short windows (a check that it runs)")
    args = parser.parse_args()
    rounds, max_time_s = (1, 0.1) if args.quick else (5, 2.0)
    settings = timer.TimerSettings(min_reps=10, max_reps=500, noise_target=0.01, max_time_s=max_time_s,
                                   threads=args.threads)
    workloads = cuda_workloads() if args.device == "cuda" else cpu_workloads()
    other = "do_bench ms" if args.device == "cuda" else "torch ms"
    print(f"{'workload':40} {'harness ms':>11} {other:>11} {'ratio':>7}")
    for name, fn in workloads.items():
        call_s = warm_call_s(fn, args.device)
        reference = (cuda_reference(fn, max_time_s) if args.device == "cuda"
                     else cpu_reference(fn, args.threads, max_time_s))
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(float(np.median(timer.measure(fn, args.device, settings, call_s))))
            theirs.append(reference())
        a, b = float(np.median(ours)), float(np.median(theirs))
        print(f"{name:40} {a:11.4f} {b:11.4f} {a / b:7.3f}")


if __name__ == "__main__":
    main()
