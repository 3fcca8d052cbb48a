"""The text of one verdict, cell by cell, shared by the terminal table, markdown and the HTML
report so the three never disagree."""
from __future__ import annotations

from dataclasses import dataclass

from harness.claims.carries import how_far
from harness.claims.evaluate import Verdict

COLUMNS = ("claim", "source (primary, with locator)", "their conditions", "our conditions", "band",
           "measured (95% interval) per point", "verdict", "measured where", "kernel path")


@dataclass(frozen=True)
class Cells:
    id: str
    claim: str  # the claim, "(project target)" where it is one
    source: str  # the source, its locator, and the figure as published
    conditions: str  # the source's
    scaling: str  # ours: how the suite measures the same thing, scaled in size
    band: str  # the claimed value, the band judged against and why
    measured: str  # each point: value [95% interval] -> outcome; or why there is none
    verdict: str
    measured_where: str  # runs, hardware, and how far the comparison carries
    kernel: str  # the kernel path the values came from, where the claim names one


def cells(verdict: Verdict, limit: int | None = None) -> Cells:
    """`limit`: at most this many points listed (the rest counted)."""
    claim = verdict.claim
    kind = " (project target)" if claim.kind == "target" else ""
    source = f"{claim.source}, {claim.locator}: “{claim.published}”"
    band = f"claimed {claim.claimed_text()}; judged against {_bands(verdict)}; {claim.band_reason}"
    return Cells(claim.id, claim.claim + kind, source, claim.conditions, claim.scaling, band,
                 measured(verdict, limit), verdict.verdict, measured_where(verdict), kernel(verdict))


def measured(verdict: Verdict, limit: int | None = None) -> str:
    if not verdict.points:
        return verdict.note
    several_runs = len({p.run for p in verdict.points}) > 1
    shown = [f"{p.estimate.text()} at {p.where}{p.shown} → {p.outcome}" + (f" (run {p.run})" if several_runs else "")
             for p in verdict.points]
    if limit is not None and len(shown) > limit:
        shown = shown[:limit] + [f"(+{len(shown) - limit} more)"]
    text = "; ".join(shown)
    how = verdict.points[0].estimate.how
    text += f". Interval from {how}"
    return text + (f". {verdict.note}" if verdict.note else "")


def measured_where(verdict: Verdict) -> str:
    runs = sorted({r for p in verdict.points for r in p.run.split(" / ") if r})
    on = ", ".join(verdict.hardware)
    where = f"{'; '.join(runs)}" + (f" on {on}" if on else "") if runs else "—"
    return f"{where}. {how_far(verdict)}"


def kernel(verdict: Verdict) -> str:
    paths = sorted({p.kernel for p in verdict.points if p.kernel})
    if paths:
        return ", ".join(paths)
    rule = verdict.claim.metric.kernel
    return f"needs {', '.join(rule.accept)}" if rule else "—"


def _bands(verdict: Verdict) -> str:
    bands = list(dict.fromkeys(str(p.band) for p in verdict.points if p.band is not None))
    if bands:
        return ", ".join(bands)
    claim = verdict.claim
    if claim.claimed is not None:
        return str(claim.claimed.band(claim.tolerance))
    return ", ".join(str(c.band(claim.tolerance)) for c in claim.claimed_at.values.values())
