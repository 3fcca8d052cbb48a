"""`compare BASE NEW`: per-case ratios and verdicts between two runs; a CI gate."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from harness.compare import Comparison, Pair, compare_runs, geometric_mean_ratio, parse_threshold
from harness.console import console

NAME = "compare"
HELP = "compare two runs case by case (NEW/BASE ratio, verdict); exit 1 on a clear regression"

STYLE = {"faster": "green", "slower": "red", "same": "", "unclear": "yellow"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, help="the run to compare against, results/<run>")
    parser.add_argument("new", type=Path, help="the run under test, results/<run>")
    parser.add_argument("--fail-above", metavar="PCT",
                        help="exit 1 when a case is clearly slower by more than this, e.g. 10%%")
    parser.add_argument("--metric", default="median_ms", help="metric to compare (default median_ms)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for PR comments)")


def main(args: argparse.Namespace) -> int:
    threshold = parse_threshold(args.fail_above) if args.fail_above is not None else None
    result = compare_runs(args.base, args.new, args.metric)
    if args.markdown:
        print(markdown(result, threshold))
    else:
        console.print(terminal_table(result, f"{args.new.name} vs {args.base.name}: {args.metric}"))
        for line in notes(result):
            console.print(escape(line))  # labels and reasons are user text, not rich markup
    if threshold is None:
        return 0
    regressions = result.regressions(threshold)
    if regressions:
        print(f"{len(regressions)} case(s) slower by more than {threshold:.0%}: "
              + ", ".join(_case(p) for p in regressions))
        return 1
    return 0


def _case(pair: Pair) -> str:
    axes = ", ".join(f"{k}={v}" for k, v in pair.axes.items())
    return f"{pair.label} [{axes}]" if axes else pair.label


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _ratio(pair: Pair) -> str:
    return "" if pair.ratio is None else f"{pair.ratio:.3f}x"


def terminal_table(result: Comparison, title: str) -> Table:
    table = Table(title=title)
    for column in ("case", "base", "new", "new/base", "verdict", "p", "why"):
        table.add_column(column, justify="right" if column in ("base", "new", "new/base", "p") else "left")
    for pair in result.compared:
        style = STYLE[pair.verdict]
        table.add_row(escape(_case(pair)), _number(pair.base), _number(pair.new), _ratio(pair),
                      f"[{style}]{pair.verdict}[/]" if style else pair.verdict,
                      "" if pair.p_value is None else f"{pair.p_value:.1e}", pair.why)
    return table


def notes(result: Comparison) -> list[str]:
    """Summary lines: verdict counts, geometric mean ratio, cases left out and why."""
    counts = {v: sum(p.verdict == v for p in result.compared) for v in STYLE}
    lines = [", ".join(f"{n} {v}" for v, n in counts.items() if n)]
    mean = geometric_mean_ratio(result.compared)
    if mean is not None:
        lines[0] += f"; geometric mean new/base {mean:.3f}x"
    for row in result.not_ok:
        reason = row["base_reason"] if row["base"] != "ok" else row["new_reason"]
        axes = ", ".join(f"{k}={v}" for k, v in row["axes"].items())
        lines.append(f"not compared: {row['label']} [{axes}] base {row['base']}, new {row['new']}: {reason}")
    lines += [f"only in base: {c}" for c in result.only_base]
    lines += [f"only in new: {c}" for c in result.only_new]
    return lines


def _md(text: str) -> str:
    """A Markdown table cell: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(result: Comparison, threshold: float | None) -> str:
    lines = ["| case | base | new | new/base | verdict | p |", "|---|---:|---:|---:|---|---:|"]
    for pair in result.compared:
        mark = "**slower**" if pair.verdict == "slower" else pair.verdict
        lines.append(f"| {_md(_case(pair))} | {_number(pair.base)} | {_number(pair.new)} | {_ratio(pair)} "
                     f"| {mark} | {'' if pair.p_value is None else f'{pair.p_value:.1e}'} |")
    lines.append("")
    lines += [f"- {_md(line)}" for line in notes(result) if line]
    if threshold is not None:
        lines.append(f"- gate: fail when clearly slower by more than {threshold:.0%}: "
                     f"{len(result.regressions(threshold))} case(s)")
    return "\n".join(lines)
