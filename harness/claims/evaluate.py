"""Turn records into a verdict per claim: reproduced, partly, not reproduced; or, with no value,
not measured (the runs hold none; a command would measure it) or not applicable here (why)."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from harness.claims.model import Claim, Metric
from harness.expr import Expression, ExprError

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"
NOT_MEASURED, NOT_APPLICABLE = "not measured", "not applicable here"
JUDGED = (REPRODUCED, PARTLY, NOT_REPRODUCED)


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    values: list[float] = field(default_factory=list)  # one per point measured
    points: list[str] = field(default_factory=list)  # where each value was measured
    runs: list[str] = field(default_factory=list)  # the run (or runs) each value came from
    hardware: list[str] = field(default_factory=list)  # what the values were measured on (env.json)
    devices: list[str] = field(default_factory=list)  # cpu / cuda, for the same records
    note: str = ""  # why there is no value, and how to get one

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


def measure_command(claim: Claim) -> str:
    return f"python -m harness claims --run-missing --only {claim.id} (runs {claim.suite})"


def evaluate(claim: Claim, frame: pd.DataFrame, device_here: str) -> Verdict:
    """The verdict from the records; where they give no value, whether a run here would."""
    rows = frame
    if claim.needs.device != "any" and "device" in frame:
        rows = frame[frame["device"] == claim.needs.device]  # a GPU claim is judged on GPU records only
    values, points, runs = metric_values(claim.metric, rows) if len(rows) else ([], [], [])
    if not values:
        reason = applicable(claim, device_here)
        if reason:
            return Verdict(claim, NOT_APPLICABLE, note=reason)
        why = _why_no_value(claim.metric, rows) or "the runs hold no ok case at its points"
        return Verdict(claim, NOT_MEASURED, note=f"{why}; to measure: {measure_command(claim)}")
    holds = [claim.claimed.holds(v, claim.tolerance) for v in values]
    verdict = REPRODUCED if all(holds) else PARTLY if any(holds) else NOT_REPRODUCED
    used = _used(rows, runs)
    return Verdict(claim, verdict, values, points, runs, _distinct(used, "hardware"), _distinct(used, "device"))


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
        calibrate = " (a percent of peak: run `python -m harness calibrate` first)" if metric.column.startswith("pct_") else ""
        return f"the runs' records have no {metric.column} column{calibrate}"
    if metric.across_runs:
        return (f"needs a run with {metric.numerator} and one with {metric.denominator} "
                "on the same hardware (ok cases at the same points)")
    if "label" in rows and "status" in rows:
        statuses = rows.loc[rows["label"] == metric.numerator, "status"].value_counts()
        if len(statuses) and "ok" not in statuses:
            return f"the runs' {metric.numerator} cases ended " + ", ".join(f"{n} {s}" for s, n in statuses.items())
    return None


def metric_values(metric: Metric, frame: pd.DataFrame) -> tuple[list[float], list[str], list[str]]:
    """The claim's metric at every point the records allow: values, a label and a run for each."""
    rows = _usable(frame, metric)
    if metric.kind == "column":
        found = _columns(rows, metric)
    elif metric.kind == "exponent":
        found = _exponents(rows, metric)
    else:
        found = _paired(rows, metric)
    return _aggregate(found, metric.aggregate)


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


Found = tuple[list[float], list[str], list[str]]


def _columns(rows: pd.DataFrame, metric: Metric) -> Found:
    if metric.column not in rows:
        return [], [], []
    side = _side(rows, metric.numerator, metric.numerator_where).dropna(subset=[metric.column])
    labels = [_point(r, metric.match or _row_axes(r)) + _shown(r, metric.show) for _, r in side.iterrows()]
    return side[metric.column].astype(float).tolist(), labels, _runs(side)


def _paired(rows: pd.DataFrame, metric: Metric) -> Found:
    top_column, bottom_column = metric.column, metric.denominator_column or metric.column
    if top_column not in rows or bottom_column not in rows:
        return [], [], []
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
    kept = joined[ok]
    labels = [_point(r, [k for k in keys if k != "run"]) + _shown(r, metric.show, "_a") for _, r in kept.iterrows()]
    runs = ([f"{r['run_a']} / {r['run_b']}" for _, r in kept.iterrows()] if "run_a" in kept
            else _runs(kept))
    return values[ok].tolist(), labels, runs


def _exponents(rows: pd.DataFrame, metric: Metric) -> Found:
    if metric.column not in rows or metric.axis not in rows:
        return [], [], []
    side = _side(rows, metric.numerator, metric.numerator_where)
    side = side[(side[metric.column] > 0) & (side[metric.axis] > 0)]
    found: Found = ([], [], [])
    for run, own in (side.groupby("run") if "run" in side else [("", side)]):  # a fit never mixes runs
        for part, more in zip(found, _fits(own, metric, str(run))):
            part.extend(more)
    return found


def _fits(side: pd.DataFrame, metric: Metric, run: str) -> Found:
    """One fit per combination of the conditions the run held fixed around the axis."""
    keys = _conditions(side, metric)
    groups = side.groupby(keys, dropna=False) if keys else [((), side)]
    values, labels = [], []
    for _, group in groups:
        if group[metric.axis].nunique() < 3:
            continue  # a slope from two points says nothing about its own error
        x, y = np.log(group[metric.axis].astype(float)), np.log(group[metric.column].astype(float))
        values.append(float(np.polyfit(x, y, 1)[0]))
        span = f"{metric.axis} {_text(group[metric.axis].min())}..{_text(group[metric.axis].max())}"
        fixed = _point(group.iloc[0], keys)
        labels.append(span + (f" ({fixed})" if fixed else ""))
    return values, labels, [run] * len(values)


def _conditions(side: pd.DataFrame, metric: Metric) -> list[str]:
    """What one fit holds fixed: `match` and every other axis the run swept, except an axis
    zipped to the fitted one (it moves with it: one value per axis value)."""
    swept = {a for axes in side["axes"] for a in _as_list(axes)} if "axes" in side else set()
    keys = [k for k in dict.fromkeys([*metric.match, *sorted(swept)]) if k in side and k != metric.axis]
    return [k for k in keys if not _moves_with(side, k, metric.axis)]


def _moves_with(side: pd.DataFrame, key: str, axis: str) -> bool:
    values = side[[axis, key]].astype(str)
    return values[key].nunique() > 1 and values.groupby(axis)[key].nunique().max() == 1


def _as_list(axes) -> list[str]:
    return [] if axes is None or (isinstance(axes, float) and np.isnan(axes)) else [str(a) for a in axes]


def _row_axes(row: pd.Series) -> list[str]:
    return _as_list(row["axes"]) if "axes" in row else []


def _within_run(keys: list[str], rows: pd.DataFrame) -> list[str]:
    """Match keys plus the run: a ratio or a fit never mixes records of two runs (two suites
    can share every swept value and still differ in what they measured)."""
    return keys + ["run"] if "run" in rows else keys


def _same_hardware(keys: list[str], rows: pd.DataFrame) -> list[str]:
    """Match keys plus the hardware, for claims whose two sides come from two runs."""
    return keys + ["hardware"] if "hardware" in rows else keys


def _runs(rows: pd.DataFrame) -> list[str]:
    return [str(r) for r in rows["run"]] if "run" in rows else [""] * len(rows)


def _aggregate(found: Found, how: str) -> Found:
    values, labels, runs = found
    if how == "each" or not values:
        return values, labels, runs
    pick = {"max": np.argmax, "min": np.argmin}.get(how)
    if pick:
        i = int(pick(values))
        return [values[i]], [labels[i]], [runs[i]]
    return [float(np.median(values))], [f"median over {len(values)} points"], [", ".join(sorted(set(runs)))]


def _point(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={_text(row[k])}" for k in keys if k in row and _present(row[k]))


def _shown(row: pd.Series, columns: list[str], suffix: str = "") -> str:
    """' (tflops=180)': the columns a claim reports beside its value, from the numerator's side."""
    cells = [(c, row.get(c + suffix, row.get(c))) for c in columns]
    text = ", ".join(f"{c}={_text(v)}" for c, v in cells if _present(v))
    return f" ({text})" if text else ""


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def _text(value) -> str:
    """A parameter as a person writes it: 16, not 16.0; 3 significant figures past that."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.3g}"
    return str(value)
