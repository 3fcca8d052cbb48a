"""What `harness run` will do: the suite checked and resolved for its device, its cases, and
what torch says of the environment (env.json's torch_facts).

Checking a suite needs its impls and workload, so torch. `harness run` therefore makes the
plan in its worker, which imports torch anyway, while the runner stays without torch (its
start and its exit are a second shorter, and it reads the end's tables meanwhile); a dry run
or the Ray executor make it in the runner.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from harness import env as environment
from harness import suite as suites
from harness.case import Case
from harness.errors import UserError
from harness.suite import Suite


@dataclass(frozen=True)
class Request:
    """The flags of `harness run` that decide its cases."""

    suite: Path
    device: str | None = None  # --device; None: the suite's
    max_cases: int = suites.MAX_CASES
    check_only: bool = False
    profile: bool = False
    profile_stack: bool = False
    only: tuple[str, ...] = ()
    where: str | None = None


@dataclass(frozen=True)
class Plan:
    suite: Suite  # as it runs: on its device, with the measure flags applied
    device: str
    cases: list[Case]
    torch_facts: dict
    excluded: dict[str, str]  # case id -> why the suite's constraints leave it out (read without the workloads)

    def portable(self) -> Plan:
        """This plan with each case's typed params left to be parsed again where the case runs:
        their classes live beside the workloads, which import torch, and the runner must not."""
        return replace(self, cases=[replace(c, workload_params=None) for c in self.cases])


def make(request: Request) -> Plan:
    """The plan, or a UserError (one line) saying what in the suite or the flags is wrong."""
    suite = suites.load(request.suite, max_cases=request.max_cases)
    device = resolve_device(request.device or suite.device)
    suite = suites.for_device(suite, device)
    measure = suite.measure
    if request.check_only:  # recorded in the run's suite.yaml, so a resume keeps to it
        measure = measure.model_copy(update={"check": True, "timed": False})
    if request.profile or request.profile_stack:  # in suite.yaml too, so a resume profiles the rest
        measure = measure.model_copy(update={"profile": True, "profile_stack": request.profile_stack})
    suite = suite.model_copy(update={"measure": measure})
    if request.only:
        labels = {e.shown for e in suite.entries} | {e.name for e in suite.entries}
        unknown = [o for o in request.only if o not in labels]
        if unknown:
            raise UserError(f"--only {unknown[0]}: not an impl of {request.suite}; valid: {', '.join(sorted(labels))}")
    cases = suites.expand(suite, device, where=request.where, only=list(request.only) or None)
    excluded = {c.id: reason for c in cases if (reason := suites.constraint_failure(suite, c))}
    return Plan(suite, device, cases, environment.torch_facts(device), excluded)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; valid: cpu")
    if requested in ("cpu", "cuda"):
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
