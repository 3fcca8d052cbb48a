"""Measure the regression set's noise and write tests/benchmarks/baseline.json.

Runs the set (tests/benchmarks/cases.yaml) RUNS times, each in a fresh Python
process so that start-up effects (allocator, thread pools, CPU frequency)
count as noise too, then stores per case the median normalized time (its
median over the reference matmul's, see harness/regression.py) and a
tolerance of max(50%, 3 x the relative spread (max-min)/median) across runs.

    python scripts/measure_benchmark_noise.py            # 5 runs, writes the baseline
    python scripts/measure_benchmark_noise.py --append   # 5 more, kept with the stored ones
    python scripts/measure_benchmark_noise.py --runs 10 --out /tmp/b.json

A VM's balance of memory against compute drifts over hours, so one sitting
understates the noise CI meets: `--append` at another time of day adds its runs
to the stored ones, and the tolerance is set from all of them.

Run it on an otherwise idle machine of the kind CI uses; commit the JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness, whatever is installed

from harness import env, regression  # noqa: E402

ONE_RUN = ("import json, sys; sys.path.insert(0, {root!r}); from harness import regression; "
           "print(json.dumps(regression.normalized_times(regression.load_set({cases!r}))))")


def one_run(cases: Path) -> dict[str, float]:
    code = ONE_RUN.format(root=str(ROOT), cases=str(cases))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def stored(path: Path) -> tuple[list[dict[str, float]], list[dict]]:
    """The per-run normalized times kept in a baseline file (one dict per run) and its sittings."""
    baseline = json.loads(path.read_text())
    cases = baseline["cases"]
    count = max(len(case["runs"]) for case in cases.values())
    runs = [{name: case["runs"][i] for name, case in cases.items() if i < len(case["runs"])} for i in range(count)]
    first = {"collected_at": baseline.get("environment", {}).get("collected_at"), "runs": count}
    return runs, baseline.get("sittings") or [first]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh-process runs of the whole set (default 5)")
    parser.add_argument("--cases", type=Path, default=ROOT / "tests/benchmarks/cases.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "tests/benchmarks/baseline.json")
    parser.add_argument("--append", action="store_true", help="keep the runs already stored in --out")
    args = parser.parse_args()
    runs, sittings = stored(args.out) if args.append else ([], [])
    for i in range(args.runs):
        runs.append(one_run(args.cases))
        print(f"run {i + 1}/{args.runs}: " + ", ".join(f"{k} {v:.3g}" for k, v in runs[-1].items()), flush=True)
    environment = env.collect("cpu")
    baseline = regression.baseline_from_runs(runs, environment)
    baseline["sittings"] = sittings + [{"collected_at": environment.get("collected_at"), "runs": args.runs}]
    regression.write_json(args.out, baseline)
    for name, case in baseline["cases"].items():
        print(f"{name}: normalized {case['normalized']:.3g}, spread {case['spread']:.1%}, "
              f"tolerance {case['tolerance']:.0%}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
