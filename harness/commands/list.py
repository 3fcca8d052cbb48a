"""`list`: every impl by family, and whether it can run here (and why not)."""
from __future__ import annotations

import argparse
import difflib

import torch
from rich.markup import escape
from rich.table import Table

from harness.console import console
from harness.errors import UserError
from impls import registry, requirements

NAME = "list"
HELP = "list every impl by family, with where it can run and why not"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("family", nargs="?", help="only this family")
    parser.add_argument("--precision", default="fp32", choices=registry.PRECISIONS,
                        help="availability at this precision (default fp32)")


def main(args: argparse.Namespace) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.family and args.family not in registry.families():
        close = difflib.get_close_matches(args.family, registry.families(), n=1)
        raise UserError(f"list {args.family}: unknown family{f' (did you mean {close[0]}?)' if close else ''};"
                        f" valid: {', '.join(registry.families())}")
    families = [args.family] if args.family else registry.families()
    for family in families:
        table = Table(title=f"{family} (here: {device}, {args.precision})", title_justify="left", expand=True)
        for column in ("impl", "precisions", "devices"):
            table.add_column(column, no_wrap=True)
        # a long reason or description is wrapped, never cut; the description gets the room
        table.add_column("here", overflow="fold", ratio=1)
        table.add_column("what it is", overflow="fold", ratio=3)
        for name in registry.names(family):
            impl = registry.get(family, name)
            ok, reason = registry.available(impl, device, args.precision)
            table.add_row(name, ",".join(sorted(impl.precisions)),
                          ",".join(sorted(requirements.runs_on(impl.devices, impl.requires))),
                          escape("yes" if ok else f"no: {reason}"), escape(impl.doc))
        console.print(table)
    return 0
