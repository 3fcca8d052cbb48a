"""Measure how CPU peak memory varies between runs of the same cases, and what compare allows.

Runs each suite RUNS times with `python -m harness run` (every run starts its own
worker processes, so allocator and start-up state count as noise too), then prints,
per case, peak_extra_bytes over the runs (min, median, max, the spread max - min)
and the largest spread by size. compare judges measured memory as `same` while
|NEW - BASE| <= MEMORY_FLOOR_BYTES + MEMORY_BAND x BASE (harness/compare.py);
the last lines say whether every pair of these runs stays inside that.

    python scripts/measure_memory_noise.py suites/smoke.yaml
    python scripts/measure_memory_noise.py suites/smoke.yaml suites/scaling_cpu.yaml --runs 10 --json noise.json

Run it on the kind of machine compare gates on; a loaded machine is fine (memory,
unlike time, does not depend on load) and is what CI meets.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness, whatever is installed

from harness import compare, results  # noqa: E402

METRIC = "peak_extra_bytes"


def one_run(suite: Path, out: Path) -> dict[str, tuple[str, float, list[float]]]:
    """{case_id: (description, peak_extra_bytes, each memory pass's figure)} of the ok cases of
    one fresh run of `suite`."""
    before = set(out.iterdir()) if out.exists() else set()
    subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--device", "cpu", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    (run_dir,) = set(out.iterdir()) - before
    return {r["case_id"]: (_describe(r), r["metrics"][METRIC], r.get("memory_samples_bytes", []))
            for r in results.read_records(run_dir) if r["status"] == "ok" and METRIC in r.get("metrics", {})}


def _describe(record: dict) -> str:
    params = record["params"]
    return f"{record['suite']}: {record['label']} [" + ", ".join(f"{a}={params[a]}" for a in record["axes"]) + "]"


def worst_pair(values: list[float]) -> float:
    """The largest |a - b| - MEMORY_BAND x min(a, b) over pairs of runs: what the floor must cover."""
    low, high = min(values), max(values)
    return high - low - compare.MEMORY_BAND * low


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=5, help="fresh runs of each suite (default 5)")
    parser.add_argument("--json", type=Path, help="also write every case's values here")
    args = parser.parse_args()
    cases: dict[str, tuple[str, list[float]]] = {}
    passes: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suite in args.suites:
            for i in range(args.runs):
                for case_id, (name, value, each) in one_run(suite, Path(tmp) / suite.stem).items():
                    cases.setdefault(case_id, (name, []))[1].append(value)
                    passes.setdefault(name, []).append(each)
                print(f"{suite} run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    rows = sorted(cases.values(), key=lambda row: statistics.median(row[1]))
    for name, values in rows:
        center = statistics.median(values)
        print(f"{name:60s} median {center / 1024:9.0f} KiB  min {min(values) / 1024:9.0f}  max "
              f"{max(values) / 1024:9.0f}  spread {(max(values) - min(values)) / 1024:7.0f} KiB "
              f"({(max(values) - min(values)) / center if center else 0:.0%})")
    needed = max(worst_pair(values) for _, values in rows)
    print(f"{len(rows)} cases x {args.runs} runs; widest pair beyond a {compare.MEMORY_BAND:.0%} band: "
          f"{needed / 1024:.0f} KiB; compare's floor is {compare.MEMORY_FLOOR_BYTES / 1024:.0f} KiB: "
          + ("every pair of runs is judged same" if needed <= compare.MEMORY_FLOOR_BYTES else "SOME PAIRS WOULD DIFFER"))
    if args.json:
        args.json.write_text(json.dumps({name: {"median": values, "passes": passes[name]} for name, values in rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
