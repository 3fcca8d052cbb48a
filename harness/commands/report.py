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
    parser.add_argument("--static", type=Path, metavar="DIR",
                        help="also write every figure as PNG and SVG into DIR (needs kaleido and Chrome/Chromium; "
                             "skipped with the reason where they are missing)")


def default_output(runs: list[Path]) -> Path:
    name = runs[0].name + (f"+{len(runs) - 1}" if len(runs) > 1 else "")
    return Path("reports") / f"{name}.html"


def main(args: argparse.Namespace) -> int:
    output = args.output or default_output(args.runs)
    blocking = _file_above(output)
    if blocking is not None:  # say so before the build, which takes a while on a big run
        raise UserError(f"-o {output}: cannot write the report there ({blocking} is a file, not a folder)")
    from harness.report.build import build_pages  # plotly: only this command needs it

    text, figures = build_pages(args.runs, metric=args.metric, baseline=args.baseline)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as err:  # no permission, a full disk, -o naming a folder
        raise UserError(f"-o {output}: cannot write the report there ({err.strerror or err})") from None
    console.print(f"{output} ({len(text.encode()) / 1e6:.1f} MB, {len(figures)} figures)", markup=False)
    if args.static is not None:
        write_images(figures, args.static)
    return 0


def write_images(figures: list, folder: Path) -> None:
    """The figures as PNG and SVG, or one line saying why they were skipped (exit status 0:
    the HTML report, the main product, is written)."""
    from harness.report.static import NoRenderer, write_static

    if folder.exists() and not folder.is_dir():
        raise UserError(f"--static {folder}: not a folder")
    try:
        paths = write_static(figures, folder)
    except NoRenderer as why:
        console.print(f"static figures skipped: {why}", markup=False)
        return
    except OSError as err:
        raise UserError(f"--static {folder}: cannot write there ({err.strerror or err})") from None
    console.print(f"{folder}: {len(paths)} images ({len(figures)} figures as PNG and SVG)", markup=False)


def _file_above(output: Path) -> Path | None:
    """The nearest existing path above `output`, if it is a file (so no folder can be made there)."""
    existing = next((p for p in output.parents if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None
