"""`report RUN [RUN ...]`: one self-contained, offline HTML report of one or more runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.console import console
from harness.errors import UserError

NAME = "report"
HELP = "write an interactive HTML report (offline, one file) of one or more runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders, results/<run>")
    parser.add_argument("-o", "--output", type=Path, help="HTML file (default reports/<run>.html)")
    parser.add_argument("--baseline", metavar="IMPL", help="impl label speedups are against (default: the suite's)")
    parser.add_argument("--metric",
                        help="metric to plot and rank by, e.g. tflops, peak_extra_bytes, pct_roofline "
                             "(default median_ms, or val_loss/accuracy/... for training runs); "
                             "higher-is-better metrics are ranked that way")


def default_output(runs: list[Path]) -> Path:
    name = runs[0].name + (f"+{len(runs) - 1}" if len(runs) > 1 else "")
    return Path("reports") / f"{name}.html"


def main(args: argparse.Namespace) -> int:
    output = args.output or default_output(args.runs)
    blocking = _file_above(output)
    if blocking is not None:  # say so before the build, which takes a while on a big run
        raise UserError(f"-o {output}: cannot write the report there ({blocking} is a file, not a folder)")
    from harness.report.build import build_report  # plotly: only this command needs it

    text, count = build_report(args.runs, metric=args.metric, baseline=args.baseline)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as err:  # no permission, a full disk, -o naming a folder
        raise UserError(f"-o {output}: cannot write the report there ({err.strerror or err})") from None
    console.print(f"{output} ({len(text.encode()) / 1e6:.1f} MB, {count} figures)", markup=False)
    return 0


def _file_above(output: Path) -> Path | None:
    """The nearest existing path above `output`, if it is a file (so no folder can be made there)."""
    existing = next((p for p in output.parents if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None
