"""`report RUN [RUN ...]`: one self-contained, offline HTML report of one or more runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.console import console
from harness.report.build import build_report

NAME = "report"
HELP = "write an interactive HTML report (offline, one file) of one or more runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders, results/<run>")
    parser.add_argument("-o", "--output", type=Path, help="HTML file (default reports/<run>.html)")
    parser.add_argument("--baseline", metavar="IMPL", help="impl label speedups are against (default: the suite's)")
    parser.add_argument("--metric", default="median_ms", help="metric to plot (default median_ms)")


def default_output(runs: list[Path]) -> Path:
    name = runs[0].name + (f"+{len(runs) - 1}" if len(runs) > 1 else "")
    return Path("reports") / f"{name}.html"


def main(args: argparse.Namespace) -> int:
    text, count = build_report(args.runs, metric=args.metric, baseline=args.baseline)
    output = args.output or default_output(args.runs)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    console.print(f"{output} ({len(text.encode()) / 1e6:.1f} MB, {count} figures)")
    return 0
