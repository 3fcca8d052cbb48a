"""Print a compression run's table (harness.report.compression) as Markdown.

    python scripts/compression_table.py results/compression-<stamp> [more runs...]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's harness and impls
from harness import results
from harness.report.compression import compression_table, markdown


def main(runs: list[str]) -> int:
    if not runs:
        print("usage: python scripts/compression_table.py RUN [RUN...]", file=sys.stderr)
        return 2
    print(markdown(compression_table(results.load(*runs))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
