"""`compare BASE NEW`: per-case ratios and verdicts between two runs, per metric; a CI gate."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from harness.metrics import higher_is_better
from harness.compare import Comparison, Pair, StatusChange, compare_runs, geometric_mean_ratio, parse_threshold
from harness.console import console
from harness.markdown import literal
from harness.profile import moved

NAME = "compare"
HELP = ("compare two runs case by case (NEW/BASE ratio, verdict, per metric); with --fail-above, "
        "exit 1 on a clear regression or a case that broke")

STYLE = {"faster": "green", "better": "green", "slower": "red", "worse": "red", "same": "", "unclear": "yellow"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, help="the run to compare against, results/<run>")
    parser.add_argument("new", type=Path, help="the run under test, results/<run>")
    parser.add_argument("--fail-above", metavar="PCT",
                        help="exit 1 when a case is clearly worse by more than this in any compared metric "
                             "(slower, more memory, lower TFLOP/s or accuracy), e.g. 10%%, or when a case "
                             "ok in BASE is wrong, failed or missing in NEW")
    parser.add_argument("--metric", metavar="NAME[,NAME]",
                        help="metrics to compare (default: times, memory and quality the runs share)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for PR comments)")


def main(args: argparse.Namespace) -> int:
    threshold = parse_threshold(args.fail_above) if args.fail_above is not None else None
    requested = [m.strip() for m in args.metric.split(",") if m.strip()] if args.metric else None
    result = compare_runs(args.base, args.new, requested)
    if args.markdown:
        print(markdown(result, threshold))
        for line in moved.lines(args.base, args.new):
            print(f"- {literal(line.strip())}")
    else:
        for metric in result.metrics:
            console.print(terminal_table(result.pairs(metric), f"{args.new.name} vs {args.base.name}: "
                                                               f"{metric} ({_better(metric)} is better)"))
        for line in notes(result) + moved.lines(args.base, args.new):
            console.print(line, markup=False, soft_wrap=True)  # labels and reasons are user text, not markup
    if threshold is None:
        return 0
    failures = gate(result, threshold)
    for line in failures:
        print(line)
    return 1 if failures else 0


def gate(result: Comparison, threshold: float) -> list[str]:
    """One line per reason to fail: clear regressions beyond the threshold, cases that broke."""
    lines = []
    for metric in result.metrics:
        worse = [p for p in result.regressions(threshold) if p.metric == metric]
        if worse:
            lines.append(f"{len(worse)} case(s) {worse[0].verdict} by more than {threshold:.0%} in {metric}: "
                         + ", ".join(_case(p.label, p.axes) for p in worse))
    broken = result.broken()
    if broken:
        lines.append(f"{len(broken)} case(s) ok in BASE broke in NEW: "
                     + ", ".join(f"{_case(c.label, c.axes)} ({c.new})" for c in broken))
    return lines


def _better(metric: str) -> str:
    return "higher" if higher_is_better(metric) else "lower"


def _case(label: str, axes: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in axes.items())
    return f"{label} [{text}]" if text else label


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _ratio(pair: Pair) -> str:
    return "" if pair.ratio is None else f"{pair.ratio:.3f}x"


def _p(pair: Pair) -> str:
    return "" if pair.p_value is None else f"{pair.p_value:.1e}"


def terminal_table(pairs: list[Pair], title: str) -> Table:
    table = Table(title=escape(title))
    for column in ("case", "base", "new", "new/base", "verdict", "p", "why"):
        table.add_column(column, justify="right" if column in ("base", "new", "new/base", "p") else "left")
    for pair in pairs:
        style = STYLE[pair.verdict]
        table.add_row(escape(_case(pair.label, pair.axes)), _number(pair.base), _number(pair.new), _ratio(pair),
                      f"[{style}]{pair.verdict}[/]" if style else pair.verdict, _p(pair), pair.why)
    return table


def notes(result: Comparison) -> list[str]:
    """Summary lines: verdict counts and geometric mean ratio per metric, then every case whose
    status differs between the runs (broke, now skipped, fixed, ...) and why."""
    lines = []
    for metric in result.metrics:
        pairs = result.pairs(metric)
        counts = ", ".join(f"{n} {v}" for v, n in ((v, sum(p.verdict == v for p in pairs)) for v in STYLE) if n)
        doubted = sum(p.verdict == "unclear" and ", but " in p.why for p in pairs)
        counts += f" ({doubted} of them noisy or timed beside other processes: not judged)" if doubted else ""
        mean = geometric_mean_ratio(pairs)
        lines.append(f"{metric}: {counts or 'no case'}" + (f"; geometric mean new/base {mean:.3f}x" if mean else ""))
    lines += [_change(c) for c in sorted(result.changes, key=lambda c: not c.broke)]
    if result.skipped_in_both:
        lines.append(f"{result.skipped_in_both} case(s) skipped in both runs")
    return lines


def _change(change: StatusChange) -> str:
    flag = "BROKE (a failure with --fail-above)" if change.broke else change.kind
    reason = f": {change.reason}" if change.reason else ""
    return f"{flag}: {_case(change.label, change.axes)} base {change.base}, new {change.new}{reason}"


def markdown(result: Comparison, threshold: float | None) -> str:
    lines = []
    for metric in result.metrics:
        lines += [f"**{literal(metric)}** ({_better(metric)} is better)", "",
                  "| case | base | new | new/base | verdict | p |", "|---|---:|---:|---:|---|---:|"]
        for pair in result.pairs(metric):
            mark = f"**{pair.verdict}**" if pair.verdict in ("slower", "worse") else pair.verdict
            lines.append(f"| {literal(_case(pair.label, pair.axes))} | {_number(pair.base)} | {_number(pair.new)} "
                         f"| {_ratio(pair)} | {mark} | {_p(pair)} |")
        lines.append("")
    lines += [f"- {literal(line)}" for line in notes(result) if line]
    if threshold is not None:
        failures = gate(result, threshold)
        lines.append(f"- gate (clearly worse by more than {threshold:.0%}, or broke): "
                     + ("; ".join(literal(f) for f in failures) if failures else "passed"))
    return "\n".join(lines)
