"""The charts only workload pages draw: distributions of per-call samples, percentiles side by
side, loss curves, perplexity against evaluation length, speculative decoding against draft
length, and serving's throughput against latency. Each returns None when its data is missing."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.basedatatypes import BaseTraceType
from plotly.subplots import make_subplots

from harness.report.data import Section, sort_key
from harness.report.figures import LAYOUT, _dropdown
from harness.report.style import colors, combo_title, number, plot_text
from harness.report.units import auto_scale, log_ticks, metric_axis, sweep_axis


def contender_names(section: Section, rows: pd.DataFrame, by: list[str]) -> list[str]:
    """'label · strategy=greedy' for each row: the impl and the categorical axes named in `by`."""
    names = []
    for _, row in rows.iterrows():
        extra = [str(row[b]) for b in by if b in row]
        run = [section.tag(row["run"])] if section.multi_run else []
        names.append(plot_text(" · ".join([str(row["label"])] + run + extra)))
    return names


def _settings(section: Section, keep: list[str]) -> tuple[list[str], list[tuple]]:
    """The swept axes (x included) not in `keep`, and their combinations: one dropdown entry each."""
    columns = [a for a in section.facets + [section.x] if a not in keep and a in section.frame
               and section.frame[a].nunique(dropna=False) > 1]
    if not columns:
        return [], [()]
    combos = section.frame[columns].drop_duplicates().itertuples(index=False, name=None)
    return columns, sorted(combos, key=lambda combo: tuple(sort_key(v) for v in combo))


def _rows(section: Section, columns: list[str], combo: tuple) -> pd.DataFrame:
    frame = section.frame[section.frame["status"] == "ok"]
    for column, value in zip(columns, combo):
        frame = frame[frame[column] == value]
    return frame


def _one_setting_at_a_time(section: Section, keep: list[str],
                           traces: Callable[[pd.DataFrame], list[BaseTraceType]]) -> go.Figure | None:
    """A figure showing one setting of the swept axes not in `keep` at a time (a dropdown):
    `traces(rows)` makes the traces of one setting's ok rows; None when no setting has any."""
    columns, combos = _settings(section, keep)
    fig, groups, titles = go.Figure(), [], []
    for combo in combos:
        made = traces(_rows(section, columns, combo))
        if made:
            fig.add_traces(made)
            groups.append(list(range(len(fig.data) - len(made), len(fig.data))))
            titles.append(combo_title(columns, combo))
    if not groups:
        return None
    _dropdown(fig, groups, titles)
    return fig


def samples_box(section: Section, metric: str, by: list[str]) -> go.Figure | None:
    """One box per contender of `metric`'s per-call samples (samples_<metric>), one setting of
    the other swept axes at a time; None when no case kept samples."""
    column = f"samples_{metric}"
    if column not in section.frame or not section.frame[column].map(_listed).any():
        return None

    def boxes(rows: pd.DataFrame) -> list[go.Box]:
        rows = rows[rows[column].map(_listed)]
        return [go.Box(y=list(samples), name=name, boxpoints="all", jitter=0.3, showlegend=False)
                for name, samples in zip(contender_names(section, rows, by), rows[column])]

    fig = _one_setting_at_a_time(section, by, boxes)
    if fig is None:
        return None
    fig.update_layout(title=plot_text(f"{metric}: one point per timed call"), **LAYOUT)
    fig.update_yaxes(title=metric_axis(metric).title, rangemode="tozero")
    return fig


def _listed(value) -> bool:
    return isinstance(value, (list, np.ndarray)) and len(value) > 0


def percentile_bars(section: Section, names: list[str], by: list[str], title: str) -> go.Figure | None:
    """Bars of each of `names` (p50, p90, p99 of one latency) per contender, one setting at a time."""
    present = [n for n in names if n in section.frame and section.frame[n].notna().any()]
    if not present:
        return None
    palette = colors(present)

    def bars(rows: pd.DataFrame) -> list[go.Bar]:
        if rows.empty:
            return []
        labels = contender_names(section, rows, by)
        return [go.Bar(x=labels, y=rows[name], name=plot_text(name), marker_color=palette[name],
                       hovertemplate="%{x}<br>" + plot_text(name) + ": %{y:.3g} ms<extra></extra>")
                for name in present]

    fig = _one_setting_at_a_time(section, by, bars)
    if fig is None:
        return None
    fig.update_layout(title=plot_text(title), barmode="group", **LAYOUT)
    values = pd.concat([section.frame[n] for n in present])
    fig.update_yaxes(title="latency (ms)", **auto_scale(values.dropna()))
    return fig


def loss_curves(section: Section) -> go.Figure | None:
    """Training loss against step, one line per impl, one setting at a time (loss_curve holds
    the loss every train_steps / len(curve) steps)."""
    if "loss_curve" not in section.frame or not section.frame["loss_curve"].map(_listed).any():
        return None
    palette = colors(list(dict.fromkeys(section.frame["label"])))

    def curves(rows: pd.DataFrame) -> list[go.Scatter]:
        rows = rows[rows["loss_curve"].map(_listed)]
        lines = []
        for name, (_, row) in zip(contender_names(section, rows, []), rows.iterrows()):
            curve = list(row["loss_curve"])
            every = float(row.get("train_steps", len(curve))) / len(curve)
            lines.append(go.Scatter(x=[every * (i + 1) for i in range(len(curve))], y=curve, mode="lines",
                                    name=name, line=dict(color=palette[row["label"]])))
        return lines

    fig = _one_setting_at_a_time(section, [], curves)
    if fig is None:
        return None
    fig.update_layout(title="training loss over steps", **LAYOUT)
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="training loss (nats per token)")
    return fig


def ppl_vs_length(section: Section) -> go.Figure | None:
    """Validation perplexity against evaluation length (n x the training seq_len, from the
    val_ppl_<n>x metrics): extrapolation beyond the length trained on."""
    columns = sorted((c for c in section.frame.columns if c.startswith("val_ppl_") and c.endswith("x")
                      and c[8:-1].isdigit()), key=lambda c: int(c[8:-1]))
    ok = section.frame[section.frame["status"] == "ok"]
    if not columns or "seq_len" not in ok or not ok[columns].notna().any().any():
        return None
    by = [a for a in section.facets if a != "seq_len" and not pd.api.types.is_numeric_dtype(section.frame[a])]
    fig = go.Figure()
    palette = colors(list(dict.fromkeys(contender_names(section, ok, by))))
    lengths = []
    for name, (_, row) in zip(contender_names(section, ok, by), ok.iterrows()):
        xs = [int(c[8:-1]) * row["seq_len"] for c in columns if pd.notna(row[c])]
        lengths += xs
        fig.add_trace(go.Scatter(x=xs, y=[row[c] for c in columns if pd.notna(row[c])], mode="lines+markers",
                                 name=f"{name} · trained at {row['seq_len']}", line=dict(color=palette[name])))
    fig.update_layout(title="perplexity against evaluation length (extrapolation)", **LAYOUT)
    fig.update_xaxes(title="evaluation length (tokens)", **log_ticks(pd.Series(lengths)))
    fig.update_yaxes(title="validation perplexity", **log_ticks(ok[columns].stack()))
    return fig


def expected_speedup(alpha: float, k: np.ndarray) -> np.ndarray:
    """Tokens per target call with acceptance alpha and k drafts, (1 - a^(k+1)) / (1 - a): the
    speed-up of Leviathan et al. (2023, Theorem 3.8) when drafting costs nothing (c = 0)."""
    return (k + 1.0) if alpha >= 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def speculative(section: Section, strategy_axis: str = "strategy") -> go.Figure | None:
    """Left: the measured speed-up of speculative decoding over greedy at the same point
    (median_ms ratio) against the draft length k, beside the expected curve; right: the
    acceptance rate. One setting of the other swept axes at a time."""
    merged = _speculative_vs_greedy(section, strategy_axis)
    if merged is None:
        return None
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=("speed-up over greedy (×)", "drafted tokens accepted"))
    palette = colors(list(dict.fromkeys(merged["label"])))
    ks = np.arange(1, max(8, int(merged["k"].max())) + 1)
    columns = [a for a in section.axes if a not in (strategy_axis, "k") and a in merged and merged[a].nunique() > 1]
    combos = sorted(merged[columns].drop_duplicates().itertuples(index=False, name=None), key=str) if columns else [()]
    groups, titles = [], []
    for combo in combos:
        rows = merged
        for column, value in zip(columns, combo):
            rows = rows[rows[column] == value]
        group = []
        for _, row in rows.iterrows():
            color, name = palette[row["label"]], plot_text(row["label"])
            alpha = row["alpha"] if pd.notna(row.get("alpha")) else row["acceptance_rate"]
            hover = (f"{name}<br>k={row['k']}<br>speed-up {number(row['speedup'])}x"
                     f"<br>acceptance {number(row['acceptance_rate'])}, α {number(alpha)}")
            fig.add_trace(go.Scatter(x=[row["k"]], y=[row["speedup"]], mode="markers", name=name, legendgroup=name,
                                     marker=dict(size=11, color=color), hovertext=hover, hoverinfo="text"), 1, 1)
            fig.add_trace(go.Scatter(x=ks, y=expected_speedup(float(alpha), ks), mode="lines", legendgroup=name,
                                     name=f"{name}: expected at c=0", line=dict(color=color, dash="dot")), 1, 1)
            fig.add_trace(go.Scatter(x=[row["k"]], y=[row["acceptance_rate"]], mode="markers", legendgroup=name,
                                     showlegend=False, marker=dict(size=11, color=color, symbol="diamond"),
                                     hovertext=hover, hoverinfo="text"), 1, 2)
            group += [len(fig.data) - 3, len(fig.data) - 2, len(fig.data) - 1]
        groups.append(group)
        titles.append(combo_title(columns, combo))
    _dropdown(fig, groups, titles)
    fig.update_layout(title="speculative decoding against draft length", **LAYOUT)
    fig.update_xaxes(title=sweep_axis("k"), range=[0.5, ks.max() + 0.5])
    fig.update_yaxes(title="speed-up (×)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="acceptance rate", range=[0, 1.05], row=1, col=2)
    return fig


def _speculative_vs_greedy(section: Section, strategy_axis: str) -> pd.DataFrame | None:
    """Speculative cases with an acceptance rate joined to greedy at the same point, with
    `speedup` (greedy's median_ms over speculative's); None when there are none."""
    frame = section.frame[section.frame["status"] == "ok"]
    if strategy_axis not in frame or "k" not in frame or "acceptance_rate" not in frame:
        return None
    spec = frame[(frame[strategy_axis] == "speculative") & frame["acceptance_rate"].notna()]
    greedy = frame[frame[strategy_axis] == "greedy"]
    match = ["run", "label"] + [a for a in section.axes if a not in (strategy_axis, "k", "temperature") and a in frame]
    merged = spec.merge(greedy[match + ["median_ms"]], on=match, suffixes=("", "_greedy"))
    if merged.empty:
        return None
    return merged.assign(speedup=merged["median_ms_greedy"] / merged["median_ms"])


def throughput_vs_latency(section: Section, policy_axis: str, latency: str) -> go.Figure | None:
    """Serving's curve: output tokens/s against a latency percentile, one line per policy (and
    impl) through the request rates, each point labelled with its rate."""
    frame = section.frame[section.frame["status"] == "ok"]
    needed = {"output_tokens_per_s", latency, "rate"}
    if not needed <= set(frame.columns) or frame[list(needed)].dropna().empty:
        return None
    by = [policy_axis] if policy_axis in frame else []
    fig = go.Figure()
    for key, rows in frame.groupby(["label", "run"] + by, sort=False):
        rows = rows.sort_values("rate")
        name = contender_names(section, rows.head(1), by)[0]
        fig.add_trace(go.Scatter(x=rows["output_tokens_per_s"], y=rows[latency], mode="lines+markers+text",
                                 text=[f"{number(r)}/s" for r in rows["rate"]], textposition="top center",
                                 name=name))
    fig.update_layout(title=plot_text(f"throughput against {latency} across request rates"), **LAYOUT)
    fig.update_xaxes(title=metric_axis("output_tokens_per_s").title)
    fig.update_yaxes(title=metric_axis(latency).title, **auto_scale(frame[latency]))
    return fig
