"""`profile RUN`: profile chosen cases of an existing run again (harness.profile)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from harness import console
from harness.errors import UserError
from harness.profile import store
from harness.profile.categories import CATEGORIES

NAME = "profile"
HELP = "profile cases of an existing run again: trace, operator table, where the time goes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a run folder, e.g. results/smoke-20250101T000000Z")
    parser.add_argument("--case", action="append", metavar="ID",
                        help="a case id from records.jsonl (repeatable); default: every ok or wrong case")
    parser.add_argument("--stack", action="store_true", help="record Python stacks too (stacks.txt)")
    parser.add_argument("--show", action="store_true",
                        help="profile nothing: print where the time goes in the run's profiled cases")


def main(args: argparse.Namespace) -> int:
    if args.show:
        frame = store.profiles(args.run)
        if frame.empty:
            raise UserError(f"{args.run}: no profiled cases (run with --profile, or `profile {args.run}`)")
        print(shares_table(frame, args.case))
        return 0
    from harness.profile import again  # the executor and torch: only when something is profiled

    cases = again.chosen_cases(args.run, args.case)
    failed = 0
    for case, outcome in again.profile_again(args.run, cases, args.stack):
        where = store.case_dir(args.run, case.id)
        failed += outcome != "ok"
        console.console.print(f"{case.id}  {case.describe()}: " + (str(where) if outcome == "ok" else outcome),
                              markup=False, soft_wrap=True)
    console.console.print(f"{len(cases) - failed} of {len(cases)} cases profiled into {args.run / store.FOLDER}",
                          markup=False, soft_wrap=True)
    return 1 if failed else 0


def shares_table(frame: pd.DataFrame, ids: list[str] | None = None) -> str:
    """Per profiled case, one line: the profiled call (ms), its overhead over the timed median,
    each category's share of the call (%), and the case (last, so a long name is never cut)."""
    frame = frame[frame["case_id"].isin(ids)] if ids else frame
    axes = [c for c in frame.columns if c not in _FIXED and not c.startswith("profile_")
            and frame[c].astype(str).nunique() > 1]  # the params that tell the cases apart
    used = [c for c in CATEGORIES if frame.get(f"profile_{c}_ms", pd.Series(dtype=float)).fillna(0).gt(0).any()]
    lines = ["where the time goes: share of the profiled call",
             f"{'call ms':>9} {'overhead':>8} " + " ".join(f"{_SHORT.get(c, c):>7}" for c in used) + "  case"]
    for _, row in frame.iterrows():
        sizes = ", ".join(f"{a}={row[a]}" for a in axes if pd.notna(row[a]))
        name = f"{row['label']} [{sizes}]" if sizes else str(row["label"])
        if row["error"]:
            lines.append(f"{'':>9} {'':>8} profile failed: {row['error']}  {name}")
            continue
        total = sum(row.get(f"profile_{c}_ms", 0.0) or 0.0 for c in CATEGORIES)
        shares = " ".join(f"{(row[f'profile_{c}_ms'] or 0.0) / total:>7.0%}" if total else f"{'':>7}" for c in used)
        lines.append(f"{_ms(row['profile_call_ms']):>9} {row['profile_overhead_ratio']:>7.2f}x {shares}  {name}")
    return "\n".join(lines)


_FIXED = {"case_id", "index", "label", "impl", "workload", "device", "error"}
_SHORT = {"matmul": "mm", "attention": "attn", "softmax_reductions": "softmax", "elementwise": "elem",
          "copies_layout": "copy", "communication": "comm", "host_overhead": "host"}


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
