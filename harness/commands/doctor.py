"""`doctor`: this machine's stack, and every impl that runs here checked against its reference."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from rich.table import Table
from rich.text import Text

from harness import console
from harness.plan import resolve_device
from harness.doctor import plan, stack
from harness.doctor.checks import Row
from harness.errors import UserError
from impls.requirements import _importable

NAME = "doctor"
HELP = ("report this machine's stack (torch, CUDA, Triton, flash-attn, NVML, the device) and check every impl "
        "that runs here against its reference (exit 1 on any failure)")
MARKS = {"pass": "pass", "fail": "FAIL", "skipped": "skipped"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if present, else cpu")
    parser.add_argument("--only", action="append", metavar="IMPL", help="check only this impl (repeatable)")
    parser.add_argument("--precision", action="append", choices=["fp32", "fp16", "bf16", "int8"],
                        help="check only this precision (repeatable)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the stack and every row as JSON")
    parser.add_argument("--budget-s", type=float, metavar="SECONDS",
                        help="start no row after this many seconds; the rest are listed as not reached")
    parser.add_argument("--no-interpret", action="store_true",
                        help="on the CPU, do not re-run under TRITON_INTERPRET=1 (the Triton rows are then skipped)")


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.budget_s is not None and args.budget_s <= 0:
        raise UserError(f"--budget-s {args.budget_s:g}: must be above 0 seconds")
    if device == "cpu" and _should_interpret(args):
        return _rerun_interpreted(args)
    described = stack.describe(device)
    console.console.print(_stack_table(described, device))
    planned = plan.rows(device, args.only, args.precision)
    if args.only and not plan.rows(device, args.only):
        raise UserError(f"--only {', '.join(args.only)}: no impl of that name is checked by the doctor; "
                        "valid: the impl column of `python -m harness doctor`")
    with console.progress(len(planned)) as advance:
        judged = plan.run(device, args.only, args.precision, budget_s=args.budget_s,
                          on_row=lambda row: advance({"label": f"{row.impl} {row.what}", "status": _status(row)}))
    console.console.print(_rows_table(judged, device))
    failed = [row for row in judged if row.status == "fail"]
    counts = {status: sum(row.status == status for row in judged) for status in MARKS}
    console.console.print(", ".join(f"{n} {status}" for status, n in counts.items()), markup=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": device, "stack": dict(described),
                                         "rows": [asdict(row) for row in judged]}, indent=1))
    if failed:
        console.console.print("failed: " + ", ".join(f"{row.impl} ({row.what})" for row in failed), markup=False)
        return 1
    return 0


def _should_interpret(args: argparse.Namespace) -> bool:
    """Triton's kernels run on the CPU only under TRITON_INTERPRET=1, which must be set before
    triton is imported: the doctor runs itself again in a process that has it."""
    return not args.no_interpret and _importable("triton") and os.environ.get("TRITON_INTERPRET") != "1"


def _rerun_interpreted(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "harness", "doctor", "--device", "cpu"]
    for name in args.only or []:
        argv += ["--only", name]
    for precision in args.precision or []:
        argv += ["--precision", precision]
    if args.json:
        argv += ["--json", str(args.json)]
    if args.budget_s is not None:
        argv += ["--budget-s", str(args.budget_s)]
    return subprocess.run(argv, env={**os.environ, "TRITON_INTERPRET": "1"}).returncode


def _status(row: Row) -> str:
    return {"pass": "ok", "fail": "error"}.get(row.status, row.status)


def _stack_table(described: list[tuple[str, str]], device: str) -> Table:
    table = Table(title=Text(f"stack ({device})"), show_header=False, title_justify="left")
    table.add_column("what", no_wrap=True)
    table.add_column("value", overflow="fold")
    for what, value in described:
        table.add_row(Text(what), Text(value))
    return table


def _rows_table(rows: list[Row], device: str) -> Table:
    table = Table(title=Text(f"checks against the reference ({device}); margin: worst error / tolerance"),
                  title_justify="left")
    for column in ("group", "impl", "what", "result", "margin", "detail"):
        table.add_column(column, no_wrap=column in ("result", "margin"), overflow="fold",
                         justify="right" if column == "margin" else "left", ratio=3 if column == "detail" else None)
    for row in rows:
        margin = f"{row.margin:.2g}" if row.margin is not None else ""
        style = {"fail": "bold red", "skipped": "dim"}.get(row.status, "")
        table.add_row(Text(row.group), Text(row.impl), Text(row.what), Text(MARKS[row.status], style=style),
                      Text(margin), Text(row.detail))
    return table
