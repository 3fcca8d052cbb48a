"""The text of one verdict, cell by cell, shared by the terminal table, markdown and the HTML
report so the three never disagree."""
from __future__ import annotations

from dataclasses import dataclass

from harness.claims.carries import how_far
from harness.claims.evaluate import Verdict


@dataclass(frozen=True)
class Cells:
    id: str
    claim: str
    source: str
    claimed: str
    measured: str
    verdict: str
    conditions: str  # the source's
    measured_where: str  # each value at its point, or why there is none and how to get one
    scaling: str  # how the suite scales the source's conditions to this device
    carries: str  # how far the comparison with the source carries


def cells(verdict: Verdict, limit: int | None = None) -> Cells:
    """`limit`: at most this many points in measured_where (the rest counted)."""
    claim = verdict.claim
    return Cells(claim.id, claim.claim, claim.source, str(claim.claimed), verdict.measured, verdict.verdict,
                 claim.conditions, measured_where(verdict, limit), claim.scaling or "—", how_far(verdict))


def measured_where(verdict: Verdict, limit: int | None = None) -> str:
    if not verdict.values:
        return verdict.note
    several_runs = len(set(verdict.runs)) > 1
    shown = [f"{value:.3g} at {point}" + (f" (run {run})" if several_runs and run else "")
             for value, point, run in zip(verdict.values, verdict.points, verdict.runs)]
    if limit is not None and len(shown) > limit:
        shown = shown[:limit] + [f"(+{len(shown) - limit} more)"]
    text = "; ".join(shown)
    runs = sorted(set(verdict.runs) - {""})
    return text + (f" (run {runs[0]})" if len(runs) == 1 else "")
