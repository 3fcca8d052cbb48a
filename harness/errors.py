"""Errors meant for the person running seqbench, not for a debugger."""
from __future__ import annotations

from impls.errors import Unsupported


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2, no traceback."""

    exit_code = 2


class Skip(Exception):
    """Raised by a workload when a case cannot run here; the message is the reason."""


# What ends a case as `skipped`: a workload's Skip, or an impl refusing params it does not
# define (impls.errors.Unsupported: impls cannot import harness, so they raise their own).
SKIPPED = (Skip, Unsupported)
