"""Errors meant for the person running seqbench, not for a debugger."""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2, no traceback."""

    exit_code = 2


class Skip(Exception):
    """Raised by a workload when a case cannot run here; the message is the reason."""
