"""Plotly figure builders, one per chart kind; each takes a Section and returns a Figure.

Other swept axes (causal, precision, ...) become a dropdown (updatemenus) that
shows one combination at a time; several runs share a chart, one dash style
per run and one colour per impl. Every user-written string is escaped.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from harness.metrics import higher_is_better, is_speed
from harness.analysis.pareto import pareto_front
from harness.report.data import RunInfo, Section, ceiling_values
from harness.report.style import bytes_text, colors, combo_title, dashes, number, plot_text, series_name
from harness.report.units import auto_scale, log_ticks, metric_axis, sweep_axis

LAYOUT = dict(template="plotly_white", height=460, margin=dict(l=70, r=30, t=80, b=60), title_x=0.01,
              legend=dict(font=dict(size=11)), hoverlabel=dict(align="left"))
WRONG = dict(symbol="x-thin-open", size=12, color="#d62728", line=dict(width=2))


def _log_axis(values: pd.Series) -> bool:
    """Logarithmic when the values are positive numbers spanning at least a decade."""
    numeric = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(numeric)) and bool((numeric > 0).all()) and numeric.max() / numeric.min() >= 10


def _xs(values: pd.Series) -> pd.Series | list[str]:
    """Axis values as plotted: numbers as they are, anything else escaped (tick labels are HTML)."""
    return values if pd.api.types.is_numeric_dtype(values) else [plot_text(v) for v in values]


def _point_text(row: pd.Series, section: Section, lines: list[str]) -> str:
    axes = ", ".join(f"{a}={row[a]}" for a in section.axes if a in row and pd.notna(row[a]))
    head = [f"<b>{plot_text(row['label'])}</b>"] + ([f"run {plot_text(row['run'])}"] if section.multi_run else [])
    return "<br>".join(head + [plot_text(axes)] + lines)


def _timing_lines(row: pd.Series) -> list[str]:
    lines = [f"median {number(row.get('median_ms'), ' ms')} "
             f"(95% CI {number(row.get('ci_low_ms'))}–{number(row.get('ci_high_ms'))} ms, "
             f"n={number(row.get('n_samples'))})"]
    if bool(row.get("noisy", False)):
        lines.append(f"<i>noisy: IQR/median {number(100 * float(row.get('noise', math.nan)))}%</i>")
    return lines


def _dropdown(fig: go.Figure, groups: list[list[int]], titles: list[str], always: list[int] = ()) -> None:
    """Show one group of traces at a time; `always` stays visible (ceilings)."""
    total = len(fig.data)
    for index in range(total):
        fig.data[index].visible = index in groups[0] or index in always
    if len(groups) < 2:
        return
    buttons = [dict(label=title, method="update",
                    args=[{"visible": [i in group or i in always for i in range(total)]}])
               for group, title in zip(groups, titles)]
    # top right, above the legend and below the mode bar, so it never covers the title on the left
    fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=1, xanchor="right",
                                        y=1.03, yanchor="bottom", showactive=True)])


def lines_vs_axis(section: Section, y: str, title: str, with_ci: bool = False) -> go.Figure:
    """`y` against the section's swept axis, one line per impl (and run); noisy points hollow,
    wrong results as red crosses off the lines. Log-log where the axis spans a decade; the
    y axis in the metric's unit (bytes in MB)."""
    fig = go.Figure()
    axis = metric_axis(y)
    palette, styles = colors(list(dict.fromkeys(section.frame["label"]))), dashes(section.runs)
    groups, titles = [], []
    for combo in fullest_first(section, y):
        rows = section.rows(combo)
        group = []
        for (label, run), series in rows.groupby(["label", "run"], sort=False):
            ok = series[(series["status"] == "ok") & series[y].notna()].sort_values(section.x)
            if ok.empty:
                continue
            fig.add_trace(_line(section, ok, y, axis.scale, with_ci, series_name(label, section.tag(run)),
                                palette[label], styles[run]))
            group.append(len(fig.data) - 1)
        wrong = rows[(rows["status"] == "wrong") & rows[y].notna()]
        if not wrong.empty:
            fig.add_trace(go.Scatter(
                x=_xs(wrong[section.x]), y=wrong[y] * axis.scale, mode="markers", marker=WRONG, name="wrong result",
                hovertext=[_point_text(r, section, [f"<b>wrong</b>: {plot_text(r['reason'])}"])
                           for _, r in wrong.iterrows()], hoverinfo="text"))
            group.append(len(fig.data) - 1)
        groups.append(group)
        titles.append(combo_title(section.facets, combo))
    _dropdown(fig, groups, titles)
    values = section.frame.loc[section.frame["status"] == "ok", y].dropna() if y in section.frame else pd.Series([])
    fig.update_layout(title=plot_text(title), **LAYOUT)
    fig.update_xaxes(title=sweep_axis(section.x), tickvals=_sweep_ticks(section),
                     **(log_ticks(section.frame[section.x]) if _log_axis(section.frame[section.x]) else {}))
    fig.update_yaxes(title=axis.title, **(log_ticks(values) if _log_axis(values) else {}))
    return fig


def fullest_first(section: Section, y: str) -> list[tuple]:
    """The dropdown's combinations, the one with the most ok points along x first (shown on
    load), the rest in sorted order."""
    combos = section.combos()
    def points(combo: tuple) -> int:
        rows = section.rows(combo)
        return rows.loc[(rows["status"] == "ok") & rows[y].notna(), section.x].nunique() if y in rows else 0
    return sorted(combos, key=lambda combo: -points(combo))


def _sweep_ticks(section: Section) -> list | None:
    """The swept values themselves as ticks (128, 256, 512 rather than log axis digits 2, 5)."""
    values = section.frame[section.x]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values) or values.nunique() > 16:
        return None
    return sorted(values.dropna().unique().tolist())


def _line(section: Section, ok: pd.DataFrame, y: str, scale: float, with_ci: bool, name: str, color: str,
          dash: str) -> go.Scatter:
    noisy = ok["noisy"].fillna(False).astype(bool) if "noisy" in ok else pd.Series(False, index=ok.index)
    text = [_point_text(r, section, _timing_lines(r) if with_ci else [f"{plot_text(y)} {_value(y, r[y])}"])
            for _, r in ok.iterrows()]
    error = None
    if with_ci and {"ci_low_ms", "ci_high_ms"} <= set(ok.columns):
        error = dict(type="data", symmetric=False, array=(ok["ci_high_ms"] - ok[y]).clip(lower=0),
                     arrayminus=(ok[y] - ok["ci_low_ms"]).clip(lower=0), thickness=1, width=3)
    return go.Scatter(x=_xs(ok[section.x]), y=ok[y] * scale, mode="lines+markers", name=name, error_y=error,
                      line=dict(color=color, dash=dash),
                      marker=dict(size=8, symbol=["circle-open" if n else "circle" for n in noisy],
                                  line=dict(width=2, color=color)),
                      hovertext=text, hoverinfo="text")


def _value(column: str, value: Any) -> str:
    return bytes_text(value) if column.endswith("bytes") else number(value)


def speedup_heatmap(section: Section, table: pd.DataFrame, metric: str) -> go.Figure | None:
    """log2(speedup) per impl (rows) and swept value (columns); cells where either side is
    wrong or failed are blank with a cross, never a number; points skipped on either side
    are left out (the failures table lists them). None when no point is left."""
    fig = go.Figure()
    groups, titles, most_rows = [], [], 0
    for combo in section.combos():
        rows = _match(table, section.facets, combo)
        rows = rows[~rows["status"].isin(["skipped", "no baseline"])]
        if rows.empty:
            continue
        rows = rows.assign(row=[series_name(l, section.tag(r)) for l, r in zip(rows["label"], rows["run"])],
                           col=rows[section.x].map(plot_text))
        names = list(dict.fromkeys(rows["row"]))
        most_rows = max(most_rows, len(names))
        groups.append(_heatmap_traces(fig, section, rows, names))
        titles.append(combo_title(section.facets, combo))
    if not groups:
        return None
    _dropdown(fig, groups, titles)
    word = "faster" if is_speed(metric) else "better"
    # one row per impl (and run), but never taller than a laptop screen shows at once (1366x768)
    layout = LAYOUT | {"height": min(620, max(LAYOUT["height"], 160 + 22 * most_rows))}
    fig.update_layout(title=plot_text(f"speedup vs {section.baseline} ({metric}; blue: {word}, ~: noisy)"), **layout)
    fig.update_xaxes(title=sweep_axis(section.x), type="category")
    fig.update_yaxes(type="category")
    return fig


def _heatmap_traces(fig: go.Figure, section: Section, rows: pd.DataFrame, names: list[str]) -> list[int]:
    """Adds one combination's heatmap (and crosses for cases not ok); returns the trace indices."""
    columns = [plot_text(v) for v in sorted(rows[section.x].unique(), key=_order)]
    z = [[None] * len(columns) for _ in names]
    text = [[""] * len(columns) for _ in names]
    hover = [[""] * len(columns) for _ in names]
    for _, r in rows.iterrows():
        i, j = names.index(r["row"]), columns.index(r["col"])
        if pd.notna(r["speedup"]) and r["status"] == "ok":
            z[i][j] = math.log2(r["speedup"])
            text[i][j] = ("~" if r["noisy"] else "") + f"{r['speedup']:.2f}x"
        hover[i][j] = f"{r['row']}<br>{plot_text(section.x)}={r['col']}<br>" + (
            f"speedup {number(r['speedup'])}x vs {plot_text(section.baseline)}" if pd.notna(r["speedup"]) else "")
        if r["note"]:
            hover[i][j] += f"<br><i>{plot_text(r['note'])}</i>"
    fig.add_trace(go.Heatmap(z=z, x=columns, y=names, text=text, texttemplate="%{text}", hovertext=hover,
                             hoverinfo="text", colorscale="RdBu", zmid=0, zmin=-3, zmax=3,
                             colorbar=dict(title="speedup", tickvals=[-3, -2, -1, 0, 1, 2, 3],
                                           ticktext=["1/8x", "1/4x", "1/2x", "1x", "2x", "4x", "8x"])))
    group = [len(fig.data) - 1]
    bad = rows[rows["status"] != "ok"]
    if not bad.empty:  # red: wrong; orange: error, oom, timeout (the status is in the hover)
        fig.add_trace(go.Scatter(x=bad["col"], y=bad["row"], mode="markers", name="not a speedup",
                                 marker=WRONG | {"color": ["#d62728" if s == "wrong" else "#ff7f0e"
                                                           for s in bad["status"]]}, showlegend=False,
                                 hovertext=[f"{r['row']}: <b>{plot_text(r['status'])}</b> {plot_text(r['note'])}"
                                            for _, r in bad.iterrows()], hoverinfo="text"))
        group.append(len(fig.data) - 1)
    return group


def _match(table: pd.DataFrame, columns: list[str], combo: tuple) -> pd.DataFrame:
    mask = pd.Series(True, index=table.index)
    for column, value in zip(columns, combo):
        mask &= table[column] == value
    return table[mask]


def _order(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float, np.number)) else (1, 0.0, str(value))


DIRECTION_SYMBOLS = ["circle", "triangle-up", "square", "diamond", "star"]
RUN_VARIANTS = ["", "-open", "-dot", "-open-dot"]  # one per run, on the direction's symbol


def roofline(section: Section, runs: list[RunInfo]) -> go.Figure | None:
    """Achieved TFLOP/s against arithmetic intensity (FLOP per byte of minimum traffic), one
    precision at a time (dropdown) with that precision's measured ceilings where a
    calibration file exists; one colour per impl, one marker per direction (fwd, fwd_bwd)."""
    frame = section.frame
    if not {"flops", "bytes_moved", "tflops"} <= set(frame.columns):
        return None
    ok = frame[(frame["status"] == "ok") & (frame["flops"] > 0) & (frame["bytes_moved"] > 0) & frame["tflops"].notna()]
    if ok.empty:
        return None
    ok = ok.assign(intensity=ok["flops"] / ok["bytes_moved"],
                   precision=ok["precision"].fillna("") if "precision" in ok else "",
                   direction=ok["direction"].fillna("") if "direction" in ok else "")
    fig = go.Figure()
    palette = colors(list(dict.fromkeys(frame["label"])))
    directions = sorted(ok["direction"].dropna().unique(), key=str)
    symbols = {d: DIRECTION_SYMBOLS[i % len(DIRECTION_SYMBOLS)] for i, d in enumerate(directions)}
    variants = {run: RUN_VARIANTS[i % len(RUN_VARIANTS)] for i, run in enumerate(section.runs)}
    low, high = ok["intensity"].min() / 2, ok["intensity"].max() * 2
    groups, titles = [], []
    for precision, rows in ok.groupby("precision", sort=True, dropna=False):
        group = []
        for (label, run, direction), series in rows.groupby(["label", "run", "direction"], sort=False, dropna=False):
            text = [_point_text(r, section, [f"{number(r['intensity'])} FLOP/B, {number(r['tflops'])} TFLOP/s"]
                                + _fractions(r)) for _, r in series.iterrows()]
            name = series_name(label, section.tag(run)) + (f" · {plot_text(direction)}" if len(directions) > 1 else "")
            fig.add_trace(go.Scatter(x=series["intensity"], y=series["tflops"], mode="markers", name=name,
                                     hovertext=text, hoverinfo="text", legendgroup=plot_text(label),
                                     marker=dict(size=9, color=palette[label],
                                                 symbol=symbols.get(direction, "circle") + variants[run])))
            group.append(len(fig.data) - 1)
        for name, xs, ys in ceilings(runs, section, [precision] if precision != "" else [], low, high):
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, line=dict(color="#555", dash="dot")))
            group.append(len(fig.data) - 1)
        groups.append(group)
        titles.append(combo_title(["precision"], (precision,)) if precision != "" else "")
    _dropdown(fig, groups, titles)
    markers = f"; markers: {', '.join(map(str, directions))}" if len(directions) > 1 else ""
    fig.update_layout(title=plot_text(f"roofline: achieved TFLOP/s vs arithmetic intensity{markers}"), **LAYOUT)
    fig.update_xaxes(title="arithmetic intensity (FLOP/byte)", **log_ticks(ok["intensity"]))
    fig.update_yaxes(title="achieved (TFLOP/s)", **log_ticks(ok["tflops"]))
    return fig


def _fractions(row: pd.Series) -> list[str]:
    """Hover lines for the percent of the device's ceilings, where known."""
    names = {"pct_roofline": "of the roofline here", "pct_peak_flops": "of peak FLOP/s",
             "pct_peak_bandwidth": "of peak bandwidth"}
    return [f"{number(row[c])}% {text}" for c, text in names.items() if c in row and pd.notna(row[c])]


def ceilings(runs: list[RunInfo], section: Section, precisions: list[str], low: float,
             high: float) -> list[tuple[str, list, list]]:
    """(name, x, y) of min(peak compute, bandwidth x intensity) per precision and per machine
    with a calibration (runs on one machine share one set of ceilings)."""
    out, seen = [], set()
    for run in runs:
        cal = run.calibration
        env_id = run.env.get("env_id", run.name)
        if not cal or run.name not in section.runs or env_id in seen:
            continue
        seen.add(env_id)
        peaks, gbps = ceiling_values(cal, precisions)
        xs = list(np.geomspace(low, high, 50))
        for precision in precisions or list(peaks):
            peak = peaks.get(precision)
            if not isinstance(peak, (int, float)) and not isinstance(gbps, (int, float)):
                continue
            ys = [min(v for v in (peak, (gbps or math.inf) * x / 1e3) if isinstance(v, (int, float))) for x in xs]
            out.append((plot_text(f"ceiling {precision} ({env_id})"), xs, ys))
    return out


# What a model is good at, higher or lower as the catalogue says; distances from a reference
# (rel_err and the like) measure round-off against a specification and go to correctness
QUALITY_METRICS = ("val_ppl", "val_ppl_1x", "val_loss", "val_bpc", "accuracy", "bleu", "exact_match", "final_loss",
                   "preference_accuracy")


def quality_metric(frame: pd.DataFrame) -> str | None:
    """The first quality metric the section's ok cases hold, or None."""
    ok = frame[frame["status"] == "ok"]
    return next((m for m in QUALITY_METRICS if m in ok and ok[m].notna().any()), None)


def quality_vs_speed(section: Section, speed: str, quality: str) -> go.Figure | None:
    """A quality metric against a speed metric for each point of the sweep (dropdown), the
    Pareto front marked; None when no case has both."""
    frame = section.frame
    if quality not in frame or speed not in frame:
        return None
    fig = go.Figure()
    palette = colors(list(dict.fromkeys(frame["label"])))
    groups, titles = [], []
    columns = section.facets + [section.x]
    for combo in section.combos(with_x=True):
        rows = section.rows(combo, with_x=True)
        rows = rows[(rows["status"] == "ok") & rows[speed].notna() & rows[quality].notna()]
        if rows.empty:
            continue
        group = []
        for (label, run), series in rows.groupby(["label", "run"], sort=False):
            text = [_point_text(r, section, [f"{plot_text(speed)} {number(r[speed])}",
                                             f"{plot_text(quality)} {number(r[quality])}"])
                    for _, r in series.iterrows()]
            fig.add_trace(go.Scatter(x=series[speed], y=series[quality], mode="markers", hovertext=text,
                                     hoverinfo="text", name=series_name(label, section.tag(run)),
                                     marker=dict(size=10, color=palette[label])))
            group.append(len(fig.data) - 1)
        # the front minimises lower-is-better quality; flip higher-is-better quality to use it
        sign = -1.0 if higher_is_better(quality) else 1.0
        front = rows[pareto_front(rows[speed].to_numpy(), sign * rows[quality].to_numpy(),
                                  higher_is_better(speed))].sort_values(speed)
        fig.add_trace(go.Scatter(x=front[speed], y=front[quality], mode="lines", name="Pareto front",
                                 line=dict(color="#333", dash="dash", width=1)))
        groups.append(group + [len(fig.data) - 1])
        titles.append(combo_title(columns, combo))
    if not groups:
        return None
    _dropdown(fig, groups, titles)
    side = "right" if higher_is_better(speed) else "left"
    height = "top" if higher_is_better(quality) else "bottom"
    fig.update_layout(title=plot_text(f"quality vs speed: {quality} against {speed} ({height}-{side} is better)"),
                      **LAYOUT)
    fig.update_xaxes(title=metric_axis(speed).title, **auto_scale(frame[speed]))
    fig.update_yaxes(title=metric_axis(quality).title)
    return fig
