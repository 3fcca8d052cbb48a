"""Turn records into a verdict per claim, from 95% intervals (harness.claims.interval).

Each point (a condition the source states: a sequence length, a temperature, a rate) gets
a value with its interval, and holds (the interval lies inside the band), fails (outside)
or is undecided (it straddles an edge, or there is no interval). The claim is then:

- reproduced: every point holds;            - not reproduced: every point fails;
- partly: some points hold and others fail, each decided by its interval;
- inconclusive: otherwise, with what would settle it;
- not measured (the runs hold no value; the command that measures it, or why the value
  cannot count, e.g. only a fallback kernel ran) or not applicable here (why).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import pandas as pd
import torch

from harness import metrics
from harness.claims.interval import Estimate
from harness.claims.model import Band, Claim, Metric
from harness.claims.points import Found, find

REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "partly", "not reproduced", "inconclusive"
NOT_MEASURED, NOT_APPLICABLE = "not measured", "not applicable here"
JUDGED = (REPRODUCED, PARTLY, NOT_REPRODUCED, INCONCLUSIVE)
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"


@dataclass
class Point:
    where: str  # the condition, e.g. "seq_len=4096"
    estimate: Estimate
    band: Band | None
    outcome: str  # holds | fails | undecided
    run: str = ""
    kernel: str = ""  # the kernel path the value came from, where the claim names one
    shown: str = ""  # columns reported beside the value, Theorem 3.8's expectation


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    points: list[Point] = field(default_factory=list)
    hardware: list[str] = field(default_factory=list)  # what the values were measured on (env.json)
    devices: list[str] = field(default_factory=list)  # cpu / cuda, for the same records
    note: str = ""  # why there is no value and how to get one, or what would settle an inconclusive one

    @property
    def values(self) -> list[float]:
        return [p.estimate.value for p in self.points]

    @property
    def runs(self) -> list[str]:
        return [p.run for p in self.points]

    @property
    def measured(self) -> str:
        if not self.points:
            return "—"
        if len(self.points) == 1:
            return self.points[0].estimate.text()
        low, high = min(self.values), max(self.values)
        return f"{low:.3g}–{high:.3g} ({len(self.points)} points)"


def applicable(claim: Claim, device: str) -> str | None:
    """Why the claim cannot be checked here, or None."""
    needs = claim.needs
    if needs.device == "cuda" and (device != "cuda" or not torch.cuda.is_available()):
        return "needs a CUDA GPU"
    for module in needs.modules:
        if importlib.util.find_spec(module) is None:
            return f"needs {module}, which is not installed"
    if needs.compute_capability and device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        if major + minor / 10 < needs.compute_capability:
            return f"needs compute capability {needs.compute_capability}"
    return None


def measure_command(claim: Claim) -> str:
    return f"python -m harness claims --run-missing --only {claim.id} (runs {claim.suite})"


def evaluate(claim: Claim, frame: pd.DataFrame, device_here: str) -> Verdict:
    """The verdict from the records; where they give no value, whether a run here would."""
    rows = frame[frame["suite"] == claim.suite_name] if "suite" in frame else frame  # what measures it like for like
    if claim.needs.device != "any" and "device" in rows:
        rows = rows[rows["device"] == claim.needs.device]  # a GPU claim is judged on GPU records only
    found, refused = find(claim.metric, rows) if len(rows) else ([], "")
    points = [_judge(claim, f) for f in found if claim.band(f.params) is not None]
    if not points:
        reason = applicable(claim, device_here)
        if reason and not refused:
            return Verdict(claim, NOT_APPLICABLE, note=reason)
        why = refused or _why_no_value(claim.metric, rows) or "the runs hold no ok case at its points"
        return Verdict(claim, NOT_MEASURED, note=f"{why}; to measure: {measure_command(claim)}")
    used = _used(rows, [p.run for p in points])
    verdict = _overall([p.outcome for p in points])
    note = settle(claim, points) if verdict == INCONCLUSIVE else ""
    return Verdict(claim, verdict, points, _distinct(used, "hardware"), _distinct(used, "device"), note)


def _judge(claim: Claim, found: Found) -> Point:
    band = claim.band(found.params)
    estimate = found.draws.estimate()
    return Point(found.label, estimate, band, outcome(estimate, band), found.run, found.kernel, found.shown)


def outcome(estimate: Estimate, band: Band) -> str:
    if not estimate.has_interval:
        return UNDECIDED
    if band.low <= estimate.low and estimate.high <= band.high:
        return HOLDS
    if estimate.high < band.low or estimate.low > band.high:
        return FAILS
    return UNDECIDED


def _overall(outcomes: list[str]) -> str:
    holds, fails = outcomes.count(HOLDS), outcomes.count(FAILS)
    if holds == len(outcomes):
        return REPRODUCED
    if fails == len(outcomes):
        return NOT_REPRODUCED
    if holds and fails:
        return PARTLY
    return INCONCLUSIVE


def settle(claim: Claim, points: list[Point]) -> str:
    """What would decide the undecided points."""
    undecided = [p for p in points if p.outcome == UNDECIDED]
    parts = []
    for p in undecided[:3]:
        e = p.estimate
        if not e.has_interval:
            parts.append(f"{p.where}: {e.how}")
        else:
            more = "more points or larger sizes" if claim.metric.kind == "exponent" else "more samples"
            parts.append(f"{p.where}: [{e.low:.3g}, {e.high:.3g}] straddles the band {p.band} "
                         f"({e.how}); {more} or a quieter machine would narrow it")
    extra = f" (+{len(undecided) - 3} more)" if len(undecided) > 3 else ""
    return "undecided at " + "; ".join(parts) + extra


def _used(rows: pd.DataFrame, runs: list[str]) -> pd.DataFrame:
    """The records of the runs the values came from."""
    if "run" not in rows:
        return rows
    return rows[rows["run"].isin({r for pair in runs for r in pair.split(" / ")})]


def _distinct(rows: pd.DataFrame, column: str) -> list[str]:
    return sorted({v for v in rows[column] if isinstance(v, str)}) if column in rows else []


def _why_no_value(metric: Metric, rows: pd.DataFrame) -> str | None:
    """Why the records still give no value, where more can be said than 'no records'."""
    if len(rows) and metric.column not in rows:
        calibrate = (" (a percent of peak: run `python -m harness calibrate` first)"
                     if metrics.is_percent_of_peak(metric.column) else "")
        return f"the runs' records have no {metric.column} column{calibrate}"
    if metric.across_runs:
        return (f"needs a run with {metric.numerator} and one with {metric.denominator} "
                "on the same hardware (ok cases at the same points)")
    if "label" in rows and "status" in rows:
        statuses = rows.loc[rows["label"] == metric.numerator, "status"].value_counts()
        if len(statuses) and "ok" not in statuses:
            return f"the runs' {metric.numerator} cases ended " + ", ".join(f"{n} {s}" for s, n in statuses.items())
    return None
