"""A claim's metric at every point the records allow, each value with its bootstrap draws."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.claims import interval
from harness.claims.interval import Draws
from harness.claims.model import Leviathan, Metric
from harness.expr import Expression, ExprError


@dataclass
class Found:
    draws: Draws
    label: str  # where: the point's conditions
    run: str
    params: dict[str, Any] = field(default_factory=dict)  # the point's params (a per-condition band)
    kernel: str = ""
    shown: str = ""


def find(metric: Metric, frame: pd.DataFrame) -> tuple[list[Found], str]:
    """The metric's values, and why records were refused (a fallback kernel) where that
    leaves none."""
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    rows, refused = _kernel_filter(where(ok, metric.where), metric)
    rng = interval.generator()
    if metric.kind == "column":
        found = _columns(rows, metric, rng)
    elif metric.kind == "exponent":
        found = _exponents(rows, metric, rng)
    else:
        found = _paired(rows, metric, rng, ok)
    if metric.best and found:
        found = [max(found, key=lambda f: f.draws.value)]
    for control in metric.controls:
        _show_control(found, metric, control, rows, ok, rng)
    return found, refused if not found else ""


def _show_control(found: list[Found], metric: Metric, control: str, rows: pd.DataFrame, ok: pd.DataFrame,
                  rng) -> None:
    """Append to each point the same metric with one side (`control_side`) picked by `control`."""
    twin = metric.model_copy(update={f"{metric.control_side}_where": control, "controls": []})
    values = {f.label: f.draws.estimate() for f in (_columns(rows, twin, rng) if metric.kind == "column"
                                                    else _paired(rows, twin, rng, ok))}
    for f in found:
        if f.label in values:
            f.shown += f"; control {control}: {values[f.label].text()}"


def _kernel_filter(rows: pd.DataFrame, metric: Metric) -> tuple[pd.DataFrame, str]:
    rule = metric.kernel
    if rule is None or rule.column not in rows:
        return rows, (f"the records name no kernel path ({rule.column})" if rule else "")
    paths = rows[rule.column]
    keep = paths.isna() | paths.isin(rule.accept)
    ran = sorted({str(p) for p in paths[~keep]})
    why = (f"only the {', '.join(ran)} path ran ({rule.column}), not an accepted kernel "
           f"({', '.join(rule.accept)})") if ran else ""
    return rows[keep], why


def _side(rows: pd.DataFrame, label: str, text: str | None) -> pd.DataFrame:
    return where(rows[rows["label"] == label], text) if "label" in rows else rows.iloc[0:0]


def _value(row: pd.Series, column: str, add: str | None, rng) -> Draws | None:
    if column not in row or not _present(row[column]):
        return None
    draws = interval.column_draws(row, column, rng)
    if add:
        if add not in row or not _present(row[add]):
            return None
        draws = interval.summed(draws, interval.column_draws(row, add, rng))
    return draws


def _columns(rows: pd.DataFrame, metric: Metric, rng) -> list[Found]:
    side = _side(rows, metric.numerator, metric.numerator_where)
    found = []
    for _, row in side.iterrows():
        draws = _value(row, metric.column, metric.add_column, rng)
        if draws is not None:
            keys = metric.match or _row_axes(row)
            found.append(Found(draws, point(row, keys), _run(row), row.to_dict(), _kernel(row, metric),
                               _shown(row, metric.show)))
    return _pool(found, metric, rng)


def _paired(rows: pd.DataFrame, metric: Metric, rng, everything: pd.DataFrame) -> list[Found]:
    """`everything`: the ok records before the claim's `where`, for Theorem 3.8's greedy runs."""
    top = _side(rows, metric.numerator, metric.numerator_where)
    bottom = _side(rows, metric.denominator or metric.numerator, metric.denominator_where)
    keys = [k for k in metric.match if k in rows]
    keys = keys + (["hardware"] if metric.across_runs else ["run"])
    keys = [k for k in keys if k in rows]
    index: dict[tuple, list[pd.Series]] = {}
    for _, r in bottom.iterrows():  # several denominators may share a numerator (draft lengths k)
        index.setdefault(_key(r, keys), []).append(r)
    found, varied = [], _varied(bottom, metric)
    for a, b in ((a, b) for _, a in top.iterrows() for b in index.get(_key(a, keys), [])):
        ta = _value(a, metric.column, metric.add_column, rng)
        tb = _value(b, metric.denominator_column or metric.column, metric.add_column, rng)
        if ta is None or tb is None or tb.value == 0:
            continue
        draws = interval.difference(ta, tb) if metric.kind == "difference" else interval.ratio(ta, tb)
        shown = _shown(a, metric.show)
        if metric.expected:
            expected = leviathan(metric.expected, a, b, everything, rng)
            if expected is None and metric.kind == "leviathan":
                continue
            if metric.kind == "leviathan":
                draws = interval.ratio(draws, expected)
            if expected is not None:
                e = expected.estimate()
                shown += f" (Thm 3.8 expects {e.text()}, alpha={_text(b.get(metric.expected.alpha))})"
        run = f"{a['run']} / {b['run']}" if metric.across_runs and "run" in a else _run(a)
        params = {**a.to_dict(), **b.to_dict()}  # an axis only the denominator varies (k) is its own
        label = ", ".join(part for part in (point(a, [k for k in keys if k != "run"]), point(b, varied))
                          if part)
        found.append(Found(draws, label, run, params, _kernel(b, metric) or _kernel(a, metric), shown))
    return _pool(found, metric, rng)


def _varied(bottom: pd.DataFrame, metric: Metric) -> list[str]:
    """The axes outside `match` that take several values among the denominator's records and
    that the sides' filters do not name (speculative decoding's k against one greedy
    baseline), so each point says which it is."""
    named = set(re.findall(r"[A-Za-z_]\w*", " ".join(filter(None, (metric.numerator_where,
                                                                  metric.denominator_where, metric.where)))))
    axes = {a for axes in bottom["axes"] for a in _as_list(axes)} if "axes" in bottom else set()
    return sorted(a for a in axes if a not in metric.match and a not in named and a in bottom
                  and bottom[a].astype(str).nunique() > 1)


def leviathan(rule: Leviathan, target: pd.Series, speculative: pd.Series, rows: pd.DataFrame,
              rng) -> Draws | None:
    """Theorem 3.8's expected speed-up at a speculative record: alpha and k from it, the cost
    ratio c from the draft's and the target's greedy decoding at the same point (`rule.match`,
    whatever the temperature: c is a time per call)."""
    alpha, k = speculative.get(rule.alpha), speculative.get(rule.k)
    if not _present(alpha) or not _present(k):
        return None
    same = [key for key in rule.match + ["run"] if key in rows]
    greedy = _side(rows, rule.target, rule.target_where)
    drafts = _side(rows, rule.draft, rule.draft_where)
    t = next((r for _, r in greedy.iterrows() if _key(r, same) == _key(target, same)), None)
    d = next((r for _, r in drafts.iterrows() if _key(r, same) == _key(target, same)), None)
    if t is None or d is None:
        return None
    cost = interval.ratio(interval.column_draws(d, "median_ms", rng), interval.column_draws(t, "median_ms", rng))
    return expected_speedup(float(alpha), int(k), cost)


def expected_speedup(alpha: float, k: int, cost: Draws) -> Draws:
    """(1 - a^(k+1)) / ((1 - a)(k c + 1)); a = 1 gives (k + 1) / (k c + 1)."""
    tokens = (k + 1.0) if alpha >= 1 else (1 - alpha ** (k + 1)) / (1 - alpha)

    def formula(c):
        return tokens / (k * c + 1)

    reps = cost.resampled()
    return Draws(float(formula(cost.value)), None if reps is None else formula(reps),
                 f"cost ratio c from {cost.how}", cost.exact)


def _exponents(rows: pd.DataFrame, metric: Metric, rng) -> list[Found]:
    if metric.column not in rows or metric.axis not in rows:
        return []
    side = _side(rows, metric.numerator, metric.numerator_where)
    side = side[(side[metric.column] > 0) & (side[metric.axis] > 0)]
    found = []
    for run, own in (side.groupby("run") if "run" in side else [("", side)]):  # a fit never mixes runs
        found.extend(_fits(own, metric, str(run), rng))
    return found


def _fits(side: pd.DataFrame, metric: Metric, run: str, rng) -> list[Found]:
    """One fit per combination of the conditions the run held fixed around the axis."""
    keys = _conditions(side, metric)
    groups = side.groupby(keys, dropna=False) if keys else [((), side)]
    found = []
    for _, group in groups:
        by_x = {}
        for _, row in group.iterrows():
            draws = _value(row, metric.column, metric.add_column, rng)
            if draws is not None:
                by_x.setdefault(float(row[metric.axis]), []).append(draws)
        if len(by_x) < 3:
            continue  # a slope from two points says nothing about its own error
        xs = np.array(sorted(by_x))
        points = [d[0] if len(d) == 1 else interval.pooled(d, rng) for d in (by_x[x] for x in xs)]
        span = f"{metric.axis} {_text(xs.min())}..{_text(xs.max())}"
        fixed = point(group.iloc[0], keys)
        found.append(Found(interval.exponent(xs, points, rng), span + (f" ({fixed})" if fixed else ""), run,
                           group.iloc[0].to_dict()))
    return found


def _pool(found: list[Found], metric: Metric, rng) -> list[Found]:
    """Points that differ only in the repeats param (seeds) become one, resampled over them."""
    if not metric.repeats:
        return found
    groups: dict[tuple, list[Found]] = {}
    for f in found:
        label = ", ".join(part for part in f.label.split(", ") if not part.startswith(f"{metric.repeats}="))
        groups.setdefault((label, f.run), []).append(f)
    return [Found(interval.pooled([f.draws for f in group], rng), label or f"pooled over {metric.repeats}", run,
                  group[0].params,
                  group[0].kernel, group[0].shown) for (label, run), group in groups.items()]


def _conditions(side: pd.DataFrame, metric: Metric) -> list[str]:
    """What one fit holds fixed: `match` and every other axis the run swept, except an axis
    zipped to the fitted one (it moves with it) and the repeats param (pooled)."""
    swept = {a for axes in side["axes"] for a in _as_list(axes)} if "axes" in side else set()
    keys = [k for k in dict.fromkeys([*metric.match, *sorted(swept)])
            if k in side and k not in (metric.axis, metric.repeats)]
    return [k for k in keys if not _moves_with(side, k, metric.axis)]


def _moves_with(side: pd.DataFrame, key: str, axis: str) -> bool:
    values = side[[axis, key]].astype(str)
    return values[key].nunique() > 1 and values.groupby(axis)[key].nunique().max() == 1


def _key(row: pd.Series, keys: list[str]) -> tuple:
    return tuple(_text(row.get(k)) for k in keys)


def _as_list(axes) -> list[str]:
    return [] if axes is None or (isinstance(axes, float) and np.isnan(axes)) else [str(a) for a in axes]


def _row_axes(row: pd.Series) -> list[str]:
    return _as_list(row["axes"]) if "axes" in row else []


def _run(row: pd.Series) -> str:
    return str(row["run"]) if "run" in row and _present(row["run"]) else ""


def _kernel(row: pd.Series, metric: Metric) -> str:
    if metric.kernel and metric.kernel.column in row and _present(row[metric.kernel.column]):
        return str(row[metric.kernel.column])
    return ""


def point(row: pd.Series, keys: list[str]) -> str:
    return ", ".join(f"{k}={_text(row[k])}" for k in keys if k in row and _present(row[k]))


def _shown(row: pd.Series, columns: list[str]) -> str:
    """' (tflops=180)': the columns a claim reports beside its value."""
    text = ", ".join(f"{c}={_text(row.get(c))}" for c in columns if _present(row.get(c)))
    return f" ({text})" if text else ""


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def where(rows: pd.DataFrame, text: str | None) -> pd.DataFrame:
    """The rows for which `text` holds; none when it names a column the rows lack."""
    if not text or not len(rows):
        return rows
    try:
        keep = Expression(text, set(rows.columns), words=_words(rows))
    except ExprError:
        return rows.iloc[0:0]
    return rows[[keep(r.to_dict()) for _, r in rows.iterrows()]]


def _words(rows: pd.DataFrame) -> set[str]:
    text_columns = [c for c in rows.columns
                    if rows[c].dtype == object or pd.api.types.is_string_dtype(rows[c].dtype)]
    return {v for c in text_columns for v in rows[c] if isinstance(v, str) and v.isidentifier()}


def _text(value) -> str:
    """A parameter as a person writes it: 16, not 16.0; 3 significant figures past that."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "nan"
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.3g}"
    return str(value)
