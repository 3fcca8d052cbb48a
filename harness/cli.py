"""`python -m harness COMMAND ...`: each command is a module in harness/commands/."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import NoReturn

from harness.errors import UserError
from impls.errors import PluginError


class _Parser(argparse.ArgumentParser):
    """argparse with a bad flag reported in one line (its usage is in --help), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone: each command module imports what
    it needs (torch, pandas, plotly), and `run` starts its worker before importing most of it."""
    import harness.commands as package

    parser = _Parser(prog="python -m harness", description="seqbench: benchmark sequence models")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__))
    for name in [command] if command in names else names:
        module = importlib.import_module(f"harness.commands.{name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)  # exits 2 on bad flags, with one line
    try:
        return int(args.handler(args) or 0)
    except (UserError, PluginError) as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted; records so far are kept (finish with --resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
