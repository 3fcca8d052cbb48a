"""Where the wall time of `python -m harness run SUITE` goes: start-up, timing, the rest of
each case, and the end. With several checkouts (--tree), runs them in alternation, so the
split before and after a change is read under the same load.

    python scripts/harness_overhead.py --rounds 3 --tree /path/to/old/checkout --tree .
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(tree: Path, suite: str) -> dict[str, float]:
    """The split of one run of `suite` from `tree` (seconds; started_at in the records when the
    checkout writes it)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.time()
        subprocess.run([sys.executable, "-m", "harness", "run", suite, "--out", out], cwd=tree,
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(tree)})
        wall = time.time() - start
        records = [json.loads(line) for line in next(Path(out).glob("*/records.jsonl")).open()]
    timing = sum(r["metrics"].get("timing_s", 0.0) for r in records)
    cases = sum(r.get("wall_s") or 0.0 for r in records)
    split = {"wall_s": wall, "timing_s": timing, "timing_share": timing / wall,
             "per_case_overhead_s": statistics.median(
                 (r.get("wall_s") or 0.0) - r["metrics"].get("timing_s", 0.0) for r in records),
             "outside_cases_s": wall - cases}
    if "started_at" in records[0]:
        split["to_first_case_s"] = records[0]["started_at"] - start
        split["after_last_case_s"] = start + wall - records[-1]["started_at"] - records[-1]["wall_s"]
        split["between_cases_s"] = sum(b["started_at"] - a["started_at"] - a["wall_s"] for a, b in zip(records, records[1:]))
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/smoke.yaml")
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to run (repeatable; default .)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            runs[tree].append(one_run(tree, args.suite))
    load = os.getloadavg()[0]
    print(f"{args.suite}, median of {args.rounds} runs per checkout, in alternation (load now {load:.1f})")
    for tree, splits in runs.items():
        keys = splits[0].keys()
        medians = {k: statistics.median(s[k] for s in splits) for k in keys}
        print(f"{tree}: " + ", ".join(f"{k} {v:.0%}" if k == "timing_share" else f"{k} {v:.2f}"
                                      for k, v in medians.items()))


if __name__ == "__main__":
    main()
