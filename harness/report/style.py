"""How values look in a report: escaping, colours per impl, dashes per run, number formats."""
from __future__ import annotations

import html
import math
from typing import Any

import plotly.express as px

PALETTE = px.colors.qualitative.Plotly + px.colors.qualitative.Dark24
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def esc(value: Any) -> str:
    """Anything a user wrote (labels, params, reasons) passes through here before it goes into
    the page's HTML."""
    return html.escape(str(value), quote=True)


def plot_text(value: Any) -> str:
    """Text drawn by plotly (titles, legends, ticks, hovers): plotly reads it as a small subset
    of HTML that decodes &amp; &lt; &gt; but shows &quot; and &#x27; as typed, so only those
    three are escaped: a label shows once, as written."""
    return html.escape(str(value), quote=False)


def colors(labels: list[str]) -> dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def dashes(runs: list[str]) -> dict[str, str]:
    return {run: DASHES[i % len(DASHES)] for i, run in enumerate(runs)}


def series_name(label: str, tag: str | None) -> str:
    """A legend entry: the impl, and the run's short tag (R1, R2, ...) when several runs share a chart."""
    return plot_text(f"{label} · {tag}" if tag else label)


def combo_title(columns: list[str], combo: tuple) -> str:
    return plot_text(", ".join(f"{c}={value_text(v)}" for c, v in zip(columns, combo))) if columns else ""


def number(value: Any, unit: str = "") -> str:
    """Three significant figures, with the unit; blank for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}{unit}"
    return esc(value)


def value_text(value: Any) -> str:
    """A swept value as a person writes it: 250000, not 250000.0; 0.5 stays 0.5."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def bytes_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"
