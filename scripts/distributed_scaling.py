"""Print a distributed run's scaling with world_size: per impl and world size, the slowest
rank's time, per-rank peak memory (largest and smallest rank), and the bytes one rank
communicates per call (counted, expected, measured), as quoted in the README and notes.

    python -m harness run suites/distributed.yaml
    python scripts/distributed_scaling.py results/distributed-<time>
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness, whatever is installed

from harness import results  # noqa: E402

COLUMNS = {"median_ms": "worker ms", "rank_max_ms": "slowest rank ms", "rank_min_ms": "fastest rank ms",
           "peak_extra_bytes": "peak MiB (largest rank)", "rank_min_peak_extra_bytes": "peak MiB (smallest)",
           "comm_bytes_counted": "counted KiB", "comm_bytes_expected": "expected KiB",
           "comm_bytes_measured": "measured KiB"}
SCALE = {"peak_extra_bytes": 2 ** 20, "rank_min_peak_extra_bytes": 2 ** 20, "comm_bytes_counted": 2 ** 10,
         "comm_bytes_expected": 2 ** 10, "comm_bytes_measured": 2 ** 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    frame = results.load(parser.parse_args().run)
    frame = frame[frame["status"] == "ok"].sort_values(["label", "causal", "world_size"])
    print("| impl | causal | P | " + " | ".join(COLUMNS.values()) + " |")
    print("|---" * (3 + len(COLUMNS)) + "|")
    for _, row in frame.iterrows():
        cells = [f"{row[c] / SCALE.get(c, 1):.1f}" if c in row and row[c] == row[c] else "-" for c in COLUMNS]
        print(f"| {row['label']} | {row['causal']} | {row['world_size']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
