"""Axis titles with their units, the scale a value is drawn at, and readable log ticks.

Every axis of the report says its unit: a metric's comes from the catalogue (bytes are
drawn in MB, 10^6 bytes), a swept axis's from AXIS_UNITS. Log axes label every tick with
the whole number (0.02, not the bare digit 2 plotly writes between decades).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from harness import metrics
from harness.report.style import plot_text

MB = 1e6

# The unit of each swept axis a suite may use; an axis not named here is a label or a count
AXIS_UNITS = {
    "seq_len": "tokens", "prompt_len": "tokens", "new_tokens": "tokens", "src_len": "tokens",
    "batch": "sequences", "rate": "requests/s", "head_dim": "", "heads": "", "window": "tokens",
    "k": "draft tokens", "target_params": "parameters", "d_model": "", "n_layers": "layers",
    "kv_budget_tokens": "tokens", "block_size": "tokens", "max_batch": "sequences",
}


@dataclass(frozen=True)
class Axis:
    """How one metric is drawn: its axis title (with the unit) and the factor its values are
    multiplied by (bytes -> MB)."""

    title: str
    scale: float = 1.0


def metric_axis(name: str) -> Axis:
    """The axis of a catalogued metric: its title without a unit in brackets, then its unit."""
    metric = metrics.get(name)
    percentile = re.search(r"_p(\d+)_", name)
    title = metric.title.replace("percentile q", f"p{percentile.group(1)}") if percentile else metric.title
    words = re.sub(r"\s*\((ms|s|bytes|J|W|MHz|GB/s|TFLOP/s|tokens/s)[^)]*\)$", "", title)
    if metric.unit == "bytes":
        return Axis(plot_text(f"{words} (MB)"), 1 / MB)
    if metric.unit and metric.unit not in words:
        return Axis(plot_text(f"{words} ({metric.unit})"))
    return Axis(plot_text(words))


def sweep_axis(name: str) -> str:
    """A swept axis's title: its name and, where it has one, its unit."""
    unit = AXIS_UNITS.get(name, "")
    return plot_text(f"{name} ({unit})" if unit else name)


def log_ticks(values: pd.Series) -> dict:
    """Layout of a log axis over `values`: whole numbers on every tick (0.02, never a bare 2),
    at 1, 2 and 5 of each decade, or one tick per decade over three decades or more, so the
    labels never crowd."""
    numeric = pd.to_numeric(values, errors="coerce")
    numeric = numeric[numeric > 0]
    span = numeric.max() / numeric.min() if len(numeric) else 1.0
    ticks = {"dtick": 1} if span >= 1e3 else ({"dtick": "D2"} if span >= 3 else {})
    return dict(type="log", tickformat="~g", **ticks)


def auto_scale(values: pd.Series) -> dict:
    """log_ticks where the positive values span a decade or more, else a linear axis."""
    numeric = pd.to_numeric(values, errors="coerce")
    numeric = numeric[numeric > 0]
    if len(numeric) and (pd.to_numeric(values, errors="coerce").dropna() > 0).all() and numeric.max() >= 10 * numeric.min():
        return log_ticks(numeric)
    return {}
