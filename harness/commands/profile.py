"""`profile RUN`: profile chosen cases of an existing run again (harness.profile)."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness import console
from harness.profile import again, store

NAME = "profile"
HELP = "profile cases of an existing run again: trace, operator table, where the time goes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a run folder, e.g. results/smoke-20250101T000000Z")
    parser.add_argument("--case", action="append", metavar="ID",
                        help="a case id from records.jsonl (repeatable); default: every ok or wrong case")
    parser.add_argument("--stack", action="store_true", help="record Python stacks too (stacks.txt)")


def main(args: argparse.Namespace) -> int:
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
