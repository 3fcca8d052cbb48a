"""`claims [RUN ...]`: a verdict per published claim, from runs (and runs it makes with --run-missing)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from rich.table import Table

from harness import results, runner, suite as suites
from harness.claims import model
from harness.claims.evaluate import NOT_APPLICABLE, Verdict, applicable, evaluate
from harness.console import console
from harness.errors import UserError

NAME = "claims"
HELP = "check published speedup claims against runs: reproduced, partly, not reproduced, not applicable"
STYLE = {"reproduced": "green", "partly": "yellow", "not reproduced": "red", "not applicable": "dim"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", type=Path, help="run folders to judge the claims on")
    parser.add_argument("--run-missing", action="store_true",
                        help="run the suites of claims the runs do not cover (on this device)")
    parser.add_argument("--only", action="append", metavar="ID", help="only this claim (repeatable)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the verdicts as markdown")
    parser.add_argument("--claims", type=Path, default=model.CLAIMS_FILE, help="the claims registry")
    parser.add_argument("--out", type=Path, default=Path("results"), help="where --run-missing writes runs")


def main(args: argparse.Namespace) -> int:
    claims = model.load(args.claims)
    if args.only:
        unknown = sorted(set(args.only) - {c.id for c in claims})
        if unknown:
            raise UserError(f"--only {unknown[0]}: no such claim; valid: {', '.join(c.id for c in claims)}")
        claims = [c for c in claims if c.id in args.only]
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
        console.print(f"markdown written to {args.markdown}")
    return 0


def run_missing(verdicts: list[Verdict], device: str, out: Path) -> list[Path]:
    """Run, once each, the suites of claims that have no data but can be checked here."""
    wanted = []
    for v in verdicts:
        if v.verdict == NOT_APPLICABLE and applicable(v.claim, device) is None and v.claim.suite not in wanted:
            wanted.append(v.claim.suite)
    made = []
    for path in wanted:
        suite = suites.for_device(suites.load(path), device)
        cases = suites.expand(suite, device)
        run_dir = runner.new_run_dir(out, suite)
        console.print(f"running {path} for claims ({len(cases)} cases) -> {run_dir}")
        runner.run(suite, cases, run_dir, runner.start(run_dir, suite, device))
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
    out = Table(title=f"Published claims on {hardware}", show_lines=True)
    for column in ("claim", "claimed", "measured", "verdict", "measured where", "source"):
        out.add_column(column, overflow="fold")
    for v in verdicts:
        where = v.note or "; ".join(v.points[:3]) + (f" (+{len(v.points) - 3} more)" if len(v.points) > 3 else "")
        out.add_row(f"[bold]{v.claim.id}[/]\n{v.claim.claim}", str(v.claim.claimed), v.measured,
                    f"[{STYLE[v.verdict]}]{v.verdict}[/]", where, v.claim.source)
    return out


def markdown(verdicts: list[Verdict], hardware: str) -> str:
    lines = [f"## Published claims on {hardware}", "",
             "| claim | claimed | measured | verdict | conditions (paper) | measured where | how far it carries |",
             "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        cells = [f"**{v.claim.id}**: {v.claim.claim} ({v.claim.source})", str(v.claim.claimed), v.measured,
                 v.verdict, v.claim.conditions, v.note or "; ".join(v.points), v.claim.carries]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"
