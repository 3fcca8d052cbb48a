"""Pieces the workload pages share: a figure along another axis, a part left out with its
reason, and the metric a page ranks by."""
from __future__ import annotations

import dataclasses

import pandas as pd
import plotly.graph_objects as go

from harness import metrics
from harness.report import figures
from harness.report.data import Section
from harness.report.page import Part
from harness.report.style import esc, number

# What each workload's page ranks contenders by when no --metric names another
PAGE_METRICS = {
    "generate": ("tokens_per_s", "median_ms"),
    "serve": ("goodput_requests_per_s", "output_tokens_per_s"),
    "model": ("tokens_per_s", "median_ms"),
    "train": figures.QUALITY_METRICS + ("train_s",),
}


def ok_values(section: Section, column: str) -> pd.Series:
    """`column` over the ok cases (empty when the records lack it)."""
    ok = section.frame[section.frame["status"] == "ok"]
    return ok[column].dropna() if column in ok else pd.Series([], dtype=float)


def has(section: Section, column: str) -> bool:
    return not ok_values(section, column).empty


def page_metric(section: Section, requested: str | None) -> str:
    """The metric the section is ranked by: the one asked for when the section has it, else its
    workload's first that it has, else median_ms, else any number its records hold."""
    wanted = ([requested] if requested else []) + list(PAGE_METRICS.get(section.workload, ())) + ["median_ms"]
    found = next((m for m in wanted if has(section, m)), None)
    if found:
        return found
    numbers = [c for c in section.frame.columns if _catalogued(c) and has(section, c)
               and pd.api.types.is_numeric_dtype(section.frame[c])]
    return numbers[0] if numbers else "median_ms"


def _catalogued(name: str) -> bool:
    try:
        metrics.get(name)
    except metrics.UnknownMetric:
        return False
    return True


def along(section: Section, x: str) -> Section:
    """The same cases with `x` on the horizontal axis; the other swept axes become the dropdown."""
    axes = section.axes if x in section.axes else section.axes + [x]
    facets = [a for a in axes if a != x and section.frame[a].nunique(dropna=False) > 1]
    return dataclasses.replace(section, x=x, facets=facets)


def lines_per(section: Section, axis: str) -> Section:
    """The same cases with one line per impl and value of `axis` (serving policies): `axis`
    joins the label and leaves the dropdown."""
    if axis == "label" or axis not in section.frame:
        return section
    frame = section.frame.assign(label=section.frame["label"].astype(str) + " · " + section.frame[axis].astype(str))
    return dataclasses.replace(section, frame=frame, facets=[f for f in section.facets if f != axis],
                               axes=[a for a in section.axes if a != axis])


def left_out(title: str, reason: str) -> Part:
    """A figure not drawn, with the one-line reason (never an empty chart)."""
    return Part(title, html=f"<p class='note'>Not drawn: {esc(reason)}.</p>")


def swept(section: Section, axis: str) -> bool:
    return axis in section.frame and section.frame[axis].nunique(dropna=True) > 1


def metric_along(section: Section, metric: str, x: str, title: str, caption: str = "") -> Part:
    """`metric` against `x`, one line per impl; left out (with why) when the records lack the
    metric or `x` takes one value."""
    if not has(section, metric):
        return left_out(title, f"no ok case records {metric}")
    if not swept(section, x):
        values = sorted(section.frame[x].dropna().unique().tolist()) if x in section.frame else []
        return left_out(title, f"{x} is not swept in these runs" + (f" (only {number(values[0])})" if values else ""))
    return Part(title, figures.lines_vs_axis(along(section, x), metric, f"{metric} vs {x}"), caption=caption)


def figure_or_reason(title: str, figure: go.Figure | None, reason: str, caption: str = "") -> Part:
    return Part(title, figure, caption=caption) if figure is not None else left_out(title, reason)
