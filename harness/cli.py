"""`python -m harness COMMAND ...`: each command is a module in harness/commands/."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from harness.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    import harness.commands as package

    parser = argparse.ArgumentParser(prog="python -m harness", description="seqbench: benchmark sequence models")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"harness.commands.{info.name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on bad flags
    try:
        return int(args.handler(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted; records so far are kept (finish with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
