"""`claims [RUN ...]`: a verdict per published claim, from runs (and runs it makes with --run-missing)."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from rich.markup import escape
from rich.table import Table

from harness import results, runner, suite as suites
from harness.claims import model
from harness.claims.evaluate import NOT_MEASURED, Verdict, evaluate
from harness.claims.present import COLUMNS, Cells, cells
from harness.console import console, progress
from harness.errors import UserError
from harness.markdown import literal

NAME = "claims"
HELP = ("check published claims against runs, from 95% intervals: reproduced, partly, not reproduced, "
        "inconclusive, not measured (no data yet), not applicable here")
STYLE = {"reproduced": "green", "partly": "yellow", "not reproduced": "red", "inconclusive": "magenta",
         "not measured": "cyan", "not applicable here": "dim"}
TERMINAL_POINTS = 4  # points listed per claim in the terminal; markdown and HTML list all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", type=Path, help="run folders to judge the claims on")
    parser.add_argument("--run-missing", action="store_true",
                        help="run the suites of claims the runs do not cover (on this device)")
    parser.add_argument("--only", action="append", metavar="ID", help="only this claim (repeatable)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the verdicts as markdown")
    parser.add_argument("--claims", type=Path, default=model.CLAIMS_FILE, help="the claims registry")
    parser.add_argument("--out", type=Path, default=Path("results"), help="where --run-missing writes runs")


def main(args: argparse.Namespace) -> int:
    claims = _selected(model.load(args.claims), args.only)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = list(args.runs)
    frame = results.load(*runs) if runs else pd.DataFrame()
    verdicts = [evaluate(c, frame, device) for c in claims]
    if args.run_missing:
        runs += run_missing(verdicts, device, args.out)
        frame = results.load(*runs) if runs else frame
        verdicts = [evaluate(c, frame, device) for c in claims]
    console.print(table(verdicts, describe_hardware(runs)))
    if args.markdown:
        args.markdown.write_text(markdown(verdicts, describe_hardware(runs)))
        console.print(f"markdown written to {args.markdown}", markup=False)
    return 0


def _selected(claims: list[model.Claim], only: list[str] | None) -> list[model.Claim]:
    if not only:
        return claims
    unknown = sorted(set(only) - {c.id for c in claims})
    if unknown:
        raise UserError(f"--only {unknown[0]}: no such claim; valid: {', '.join(c.id for c in claims)}")
    return [c for c in claims if c.id in only]


def run_missing(verdicts: list[Verdict], device: str, out: Path) -> list[Path]:
    """Run, once each, the suites of claims that have no data but can be checked here."""
    wanted = list(dict.fromkeys(v.claim.suite_path for v in verdicts if v.verdict == NOT_MEASURED))
    made = []
    for path in wanted:
        suite = suites.for_device(suites.load(path), device)
        cases = suites.expand(suite, device)
        run_dir = runner.new_run_dir(out, suite)
        console.print(f"running {path} for claims ({len(cases)} cases on {device}) -> {run_dir}", markup=False)
        with progress(len(cases)) as advance:
            runner.run(runner.Run(suite, cases, run_dir, runner.start(run_dir, suite, device)), on_record=advance)
        made.append(run_dir)
    return made


def describe_hardware(runs: list[Path]) -> str:
    names = []
    for run in runs:
        env = results.env(run)
        if env:
            names.append(env.get("gpu") or f"{env.get('cpu_model')} ({env.get('torch_threads')} threads)")
    return "; ".join(sorted(set(names))) or "no runs"


def table(verdicts: list[Verdict], hardware: str) -> Table:
    """Every cell wraps (long words fold) rather than being cut off."""
    out = Table(title=f"Published claims on {hardware}", show_lines=True)
    for column in COLUMNS:
        out.add_column(column, overflow="fold")
    for v in verdicts:
        c = Cells(**{key: escape(text) for key, text in asdict(cells(v, limit=TERMINAL_POINTS)).items()})
        out.add_row(f"[bold]{c.id}[/]\n{c.claim}", c.source, c.conditions, c.scaling, c.band, c.measured,
                    f"[{STYLE[v.verdict]}]{c.verdict}[/]", c.measured_where, c.kernel)
    return out


def rows(verdicts: list[Verdict]) -> list[list[str]]:
    """One row of cells per verdict, in COLUMNS order (markdown and the HTML report)."""
    out = []
    for v in verdicts:
        c = cells(v)
        out.append([f"**{c.id}**: {c.claim}", c.source, c.conditions, c.scaling, c.band, c.measured, c.verdict,
                    c.measured_where, c.kernel])
    return out


def markdown(verdicts: list[Verdict], hardware: str) -> str:
    counts = {s: sum(v.verdict == s for v in verdicts) for s in STYLE}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines = [f"## Published claims on {literal(hardware)}", "", f"{len(verdicts)} claims: {summary}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for v in verdicts:
        c = cells(v)
        row = [f"**{literal(c.id)}**: {literal(c.claim)}"]
        row += [literal(cell) for cell in (c.source, c.conditions, c.scaling, c.band, c.measured, c.verdict,
                                           c.measured_where, c.kernel)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
