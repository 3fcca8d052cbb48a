"""The compression page: every method's quality against its decoding speed and against its
weight bytes, per architecture, with the Pareto fronts, and the table behind them (kernel
path, bytes, tokens/s, the alternated speed-up, quality, agreement with the float model)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.report.compression import compression_table
from harness.report.data import RunInfo, Section
from harness.report.figures import LAYOUT
from harness.report.page import Part
from harness.report.pages.common import left_out
from harness.report.pages.generic import failure_parts
from harness.report.style import colors, plot_text
from harness.report.tables import html_table
from harness.report.units import MB, metric_axis

FRONTS = (("tokens_per_s", "front_speed", "speed", 1.0), ("weight_bytes", "front_bytes", "weight bytes", 1 / MB))


def parts(section: Section, runs: list[RunInfo], metric: str) -> list[Part]:
    table = compression_table(section.frame)
    if table.empty:
        return [left_out("Quality against speed and bytes", "no compression case ended ok")] + failure_parts(section)
    found = []
    for (task, precision), rows in table.groupby(["task", "precision"], sort=False):
        for x, front, name, scale in FRONTS:
            found.append(Part(f"{task} ({precision}): quality against {name}", _front_figure(rows, x, front, scale),
                              caption="One point per method and architecture; the dashed line joins each "
                                      "architecture's Pareto front. Quality: "
                                      f"{rows['quality_metric'].iloc[0]}."))
    found.append(Part("Every method", html=_table_html(table),
                      caption="Kernel path: the matmul each layer's last call ran (layers in brackets); "
                              "'dequantize' is a fallback that reads float weights made on every call."))
    return found + failure_parts(section)


def _method(row) -> str:
    sparsity = row["sparsity"]
    return str(row["method"]) + (f" {sparsity:g}" if str(row["method"]).startswith("prune_") and pd.notna(sparsity)
                                 else "")


def _front_figure(rows: pd.DataFrame, x: str, front: str, scale: float) -> go.Figure:
    fig = go.Figure()
    palette = colors(list(dict.fromkeys(rows["impl"])))
    quality = rows["quality_metric"].iloc[0]
    for impl, own in rows.groupby("impl", sort=False):
        fig.add_trace(go.Scatter(x=own[x] * scale, y=own["quality"], mode="markers+text", name=plot_text(impl),
                                 text=[plot_text(_method(r)) for _, r in own.iterrows()], textposition="top center",
                                 textfont=dict(size=9), marker=dict(size=9, color=palette[impl])))
        on = own[own[front].astype(bool)].sort_values(x)
        fig.add_trace(go.Scatter(x=on[x] * scale, y=on["quality"], mode="lines", showlegend=False,
                                 line=dict(color=palette[impl], dash="dash", width=1)))
    fig.update_layout(title=plot_text(f"{quality} against {x}"), xaxis_title=metric_axis(x).title,
                      yaxis_title=metric_axis(quality).title, **LAYOUT)
    return fig


def _table_html(table: pd.DataFrame) -> str:
    headers = ["arch", "task", "method", "precision", "kernel path", "weight KB", "tokens/s",
               "speed-up (alternated)", "quality", "token match", "on the front of"]
    rows = []
    for _, r in table.iterrows():
        fronts = "/".join(name for flag, name in (("front_speed", "speed"), ("front_bytes", "bytes")) if r[flag])
        rows.append([r["impl"], r["task"], _method(r), r["precision"], r["kernel_path"], r["weight_bytes"] / 1e3,
                     r["tokens_per_s"], r["speedup_vs_uncompressed"], f"{r['quality_metric']} {r['quality']:.4g}",
                     r["token_match"], fronts or "-"])
    return html_table(headers, rows)
