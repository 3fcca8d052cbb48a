"""Errors meant for the person running seqbench, not for a debugger."""
from __future__ import annotations

from impls.errors import Unsupported


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2, no traceback."""

    exit_code = 2


class RunStopped(UserError):
    """A run that cannot go on (its folder cannot be written): one line, exit status 1, the
    records so far kept. `resume_command` is how to finish it, filled in by whoever knows."""

    exit_code = 1

    def __init__(self, message: str, run_dir: object):
        super().__init__(message)
        self.message, self.run_dir, self.resume_command = message, run_dir, f"--resume {run_dir}"

    def __str__(self) -> str:
        return f"{self.message}; finish it with: {self.resume_command}"


class Skip(Exception):
    """Raised by a workload when a case cannot run here; the message is the reason."""


# What ends a case as `skipped`: a workload's Skip, or an impl refusing params it does not
# define (impls.errors.Unsupported: impls cannot import harness, so they raise their own).
SKIPPED = (Skip, Unsupported)
