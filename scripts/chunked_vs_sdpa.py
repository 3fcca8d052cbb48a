"""Chunked attention against torch's fused CPU kernel (sdpa_flash), timed in alternation.

Each impl runs through the op workload's build (the same inputs a suite would time),
checked against its reference first; both are then timed with the harness timer in
alternation for a number of rounds, at one thread and at two. Printed per (causal,
threads): each impl's fastest and median ms (median with its 95% interval) and
chunked's time over sdpa_flash's, by fastest samples and as the median of the
per-round ratios with its 95% interval (issue 17's target: at most 1.5).

    python scripts/chunked_vs_sdpa.py                  # N=4096, B1 H8 D64 fp32
    python scripts/chunked_vs_sdpa.py --impls chunked chunked_compiled --rounds 7
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness and impls, whatever is installed

from harness import regression  # noqa: E402
from harness.measure import timer  # noqa: E402
from harness.measure.stats import median_ci  # noqa: E402

BASELINE = "sdpa_flash"


def interval(values: list[float]) -> tuple[float, float, float]:
    x = np.sort(np.asarray(values))
    low, high = median_ci(x)
    return float(np.median(x)), low, high


def measure(impls: list[str], causal: bool, threads: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Per-round samples (each a block median from the harness timer) of every impl."""
    shape = dict(seq_len=args.seq_len, heads=args.heads, head_dim=args.head_dim, batch=args.batch, causal=causal)
    runs = {impl: regression.prepare(regression.build_case("attention", impl, **shape))[0].run
            for impl in [BASELINE, *impls]}
    settings = timer.TimerSettings(min_reps=3, max_reps=10, noise_target=0.05, max_time_s=1.0, threads=threads)
    samples = regression.interleaved_samples(runs, args.rounds, settings)
    per_round = len(next(iter(samples.values()))) // args.rounds
    # one figure per round for each impl (its fastest block), so rounds pair up for ratios
    return {impl: [min(s[r * per_round:(r + 1) * per_round]) for r in range(args.rounds)]
            for impl, s in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impls", nargs="+", default=["chunked"])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"B{args.batch} H{args.heads} N{args.seq_len} D{args.head_dim} fp32; ms (median [95% interval]); "
          f"ratio = impl / {BASELINE} (<= 1.5 is issue 17's target)")
    print(f"{'causal':>6} {'thr':>3} {'impl':18} {'fastest':>8} {'median [interval]':>26} {'ratio fastest':>13} "
          f"{'ratio median [interval]':>26}")
    for causal in (False, True):
        for threads in args.threads:
            samples = measure(args.impls, causal, threads, args)
            base = samples[BASELINE]
            for impl, values in samples.items():
                med, low, high = interval(values)
                line = f"{causal!s:>6} {threads:3d} {impl:18} {min(values):8.1f} {med:9.1f} [{low:6.1f}, {high:6.1f}]"
                if impl != BASELINE:
                    r_med, r_low, r_high = interval([v / b for v, b in zip(values, base)])
                    line += f" {min(values) / min(base):13.2f} {r_med:9.2f} [{r_low:5.2f}, {r_high:5.2f}]"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
