"""Turn records into a verdict per claim: reproduced, partly, not reproduced, not applicable."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from harness.claims.model import Claim, Metric
from harness.expr import Expression, ExprError

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_APPLICABLE = "reproduced", "partly", "not reproduced", "not applicable"


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    values: list[float] = field(default_factory=list)  # one per point measured
    points: list[str] = field(default_factory=list)  # where each value was measured
    note: str = ""  # why not applicable, or what was measured where

    @property
    def measured(self) -> str:
        if not self.values:
            return "—"
        low, high = min(self.values), max(self.values)
        return f"{low:.3g}" if np.isclose(low, high, rtol=1e-3) else f"{low:.3g}–{high:.3g}"


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


def evaluate(claim: Claim, frame: pd.DataFrame, device_here: str) -> Verdict:
    """The verdict from the records; where they hold nothing, why (needs, or no run yet)."""
    rows = frame
    if claim.needs.device != "any" and "device" in frame:
        rows = frame[frame["device"] == claim.needs.device]  # a GPU claim is judged on GPU records only
    values, points = metric_values(claim.metric, rows) if len(rows) else ([], [])
    if not values:
        reason = applicable(claim, device_here) or _why_no_value(claim.metric, rows)
        return Verdict(claim, NOT_APPLICABLE, note=reason or "no matching ok records (use --run-missing)")
    holds = [claim.claimed.holds(v, claim.tolerance) for v in values]
    verdict = REPRODUCED if all(holds) else PARTLY if any(holds) else NOT_REPRODUCED
    return Verdict(claim, verdict, values, points)


def _why_no_value(metric: Metric, rows: pd.DataFrame) -> str | None:
    """Why the records still give no value, where more can be said than 'no records'."""
    if len(rows) and metric.column not in rows:
        return f"the runs' records have no {metric.column} column"
    if metric.across_runs:
        return (f"needs a run with {metric.numerator} and one with {metric.denominator} "
                "on the same hardware (ok cases at the same points)")
    return None


def metric_values(metric: Metric, frame: pd.DataFrame) -> tuple[list[float], list[str]]:
    """The claim's metric at every point the records allow, with a label for each point."""
    rows = _usable(frame, metric)
    if metric.kind == "column":
        if metric.column not in rows:
            return [], []
        side = _side(rows, metric.numerator, metric.numerator_where).dropna(subset=[metric.column])
        values, points = side[metric.column].tolist(), [_point(r, metric.match) for _, r in side.iterrows()]
    elif metric.kind == "exponent":
        values, points = _exponents(rows, metric)
    else:
        values, points = _paired(rows, metric)
    return _aggregate(values, points, metric.aggregate)


def _usable(frame: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    rows = frame[frame["status"] == "ok"] if "status" in frame else frame
    return _where(rows, metric.where)


def _where(rows: pd.DataFrame, text: str | None) -> pd.DataFrame:
    """The rows for which `text` holds; none when it names a column the rows lack."""
    if not text or not len(rows):
        return rows
    try:
        keep = Expression(text, set(rows.columns), words=_words(rows))
    except ExprError:
        return rows.iloc[0:0]
    return rows[[keep(r.to_dict()) for _, r in rows.iterrows()]]


def _side(rows: pd.DataFrame, label: str, where: str | None) -> pd.DataFrame:
    return _where(rows[rows["label"] == label], where)


def _words(rows: pd.DataFrame) -> set[str]:
    text_columns = [c for c in rows.columns
                    if rows[c].dtype == object or pd.api.types.is_string_dtype(rows[c].dtype)]
    return {v for c in text_columns for v in rows[c] if isinstance(v, str) and v.isidentifier()}


def _paired(rows: pd.DataFrame, metric: Metric) -> tuple[list[float], list[str]]:
    top_column, bottom_column = metric.column, metric.denominator_column or metric.column
    if top_column not in rows or bottom_column not in rows:
        return [], []
    top = _side(rows, metric.numerator, metric.numerator_where)
    bottom = _side(rows, metric.denominator or metric.numerator, metric.denominator_where)
    keys = [k for k in metric.match if k in rows]
    keys = _same_hardware(keys, rows) if metric.across_runs else _within_run(keys, rows)
    joined = top.merge(bottom, on=keys, suffixes=("_a", "_b")) if keys else top.merge(bottom, how="cross",
                                                                                       suffixes=("_a", "_b"))
    a = joined[top_column + "_a" if top_column + "_a" in joined else top_column]
    b = joined[bottom_column + "_b" if bottom_column + "_b" in joined else bottom_column]
    values = (a / b if metric.kind == "ratio" else a - b).astype(float)
    ok = values.notna() & np.isfinite(values)
    points = [_point(r, keys) + (f" (runs {r['run_a']} / {r['run_b']})" if "run_a" in r else "")
              for _, r in joined[ok].iterrows()]
    return values[ok].tolist(), points


def _exponents(rows: pd.DataFrame, metric: Metric) -> tuple[list[float], list[str]]:
    if metric.column not in rows or metric.axis not in rows:
        return [], []
    side = _side(rows, metric.numerator, metric.numerator_where)
    side = side[(side[metric.column] > 0) & (side[metric.axis] > 0)]
    keys = _within_run([k for k in metric.match if k in side and k != metric.axis], side)
    groups = side.groupby(keys, dropna=False) if keys else [((), side)]
    values, points = [], []
    for key, group in groups:
        if group[metric.axis].nunique() < 3:
            continue  # a slope from two points says nothing about its own error
        slope = np.polyfit(np.log(group[metric.axis].astype(float)), np.log(group[metric.column].astype(float)), 1)[0]
        values.append(float(slope))
        lo, hi = group[metric.axis].min(), group[metric.axis].max()
        where = ", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,)))
        points.append(f"{metric.axis} {lo}..{hi}" + (f" ({where})" if where else ""))
    return values, points


def _within_run(keys: list[str], rows: pd.DataFrame) -> list[str]:
    """Match keys plus the run: a ratio or a fit never mixes records of two runs (two suites
    can share every swept value and still differ in what they measured)."""
    return keys + ["run"] if "run" in rows else keys


def _same_hardware(keys: list[str], rows: pd.DataFrame) -> list[str]:
    """Match keys plus the hardware, for claims whose two sides come from two runs."""
    return keys + ["hardware"] if "hardware" in rows else keys


def _aggregate(values: list[float], points: list[str], how: str) -> tuple[list[float], list[str]]:
    if how == "each" or not values:
        return values, points
    pick = {"max": np.argmax, "min": np.argmin}.get(how)
    if pick:
        i = int(pick(values))
        return [values[i]], [points[i]]
    return [float(np.median(values))], [f"median over {len(values)} points"]


def _point(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in keys if k in row and pd.notna(row[k]))
