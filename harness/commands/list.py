"""`list`: every impl by family, and whether it can run here (and why not)."""
from __future__ import annotations

import argparse

import torch
from rich.table import Table

from harness.console import console
from impls import registry

NAME = "list"
HELP = "list every impl by family, with where it can run and why not"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("family", nargs="?", help="only this family")
    parser.add_argument("--precision", default="fp32", help="availability at this precision (default fp32)")


def main(args: argparse.Namespace) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    families = [args.family] if args.family else registry.families()
    for family in families:
        table = Table(title=f"{family}", title_justify="left")
        for column in ("impl", "precisions", "devices", f"here ({device}, {args.precision})", "what it is"):
            table.add_column(column)
        for name in registry.names(family):
            impl = registry.get(family, name)
            ok, reason = registry.available(impl, device, args.precision)
            table.add_row(name, ",".join(sorted(impl.precisions)), ",".join(sorted(impl.devices)),
                          "yes" if ok else f"no: {reason}", impl.doc)
        console.print(table)
    return 0
