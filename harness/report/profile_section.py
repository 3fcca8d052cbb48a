"""The report's "Where the time goes": for runs made with --profile (or `harness profile`),
each profiled case's time per call by category as stacked bars, the operators each impl
spends most on, and links to every trace."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from harness.profile import store
from harness.profile.categories import CATEGORIES
from harness.report.data import RunInfo
from harness.report.page import PageSection, Part
from harness.report.style import PALETTE, esc, number
from harness.report.tables import html_table

TOP_OPERATORS = 5
LAYOUT = dict(template="plotly_white", height=460, margin=dict(l=70, r=30, t=80, b=120), title_x=0.01,
              barmode="stack", legend=dict(font=dict(size=11)))


def sections(runs: list[RunInfo]) -> list[PageSection]:
    """One section per run that holds profiles; none for runs without."""
    found = []
    for i, run in enumerate(runs):
        frame = store.profiles(run.path)
        if frame.empty:
            continue
        title = "Where the time goes" + (f": {run.name}" if len(runs) > 1 else "")
        found.append(PageSection(title, f"profile-{i}", _parts(run, frame)))
    return found


def _parts(run: RunInfo, frame: pd.DataFrame) -> list[Part]:
    ran = frame[frame["error"].fillna("") == ""]
    parts = []
    if not ran.empty:
        parts.append(Part("Time per call by category", stacked_bars(ran),
                          caption="One bar per profiled case: torch.profiler's pass, split by operator name; "
                                  "host overhead is the time between operators (on a GPU, the device idle). "
                                  "Profiled calls run slower than timed ones (the overhead column below)."))
        parts.append(Part("Top operators per impl", html=top_operators(store.operators(run.path)),
                          caption="Self time per call, summed over the impl's profiled cases."))
    parts.append(Part("Traces", html=trace_links(run, frame),
                      caption="Traces open in ui.perfetto.dev or chrome://tracing; memory snapshots in "
                              "pytorch.org/memory_viz. Overhead: profiled call / timed median."))
    return parts


def case_name(row: pd.Series, axes: list[str]) -> str:
    sizes = ", ".join(f"{axis}={row[axis]}" for axis in axes if axis in row and pd.notna(row[axis]))
    return f"{row['label']} [{sizes}]" if sizes else str(row["label"])


def _axes(frame: pd.DataFrame) -> list[str]:
    fixed = {"case_id", "index", "label", "impl", "workload", "device", "error"}
    return [c for c in frame.columns if c not in fixed and not c.startswith("profile_")]


def stacked_bars(frame: pd.DataFrame) -> go.Figure:
    names = [case_name(row, _axes(frame)) for _, row in frame.iterrows()]
    fig = go.Figure()
    for i, category in enumerate(CATEGORIES):
        column = f"profile_{category}_ms"
        if column in frame and frame[column].fillna(0).gt(0).any():
            fig.add_bar(x=names, y=frame[column].fillna(0), name=esc(category), marker_color=PALETTE[i % len(PALETTE)],
                        hovertemplate="%{x}<br>" + esc(category) + ": %{y:.3g} ms<extra></extra>")
    fig.update_layout(title="profiled time per call by category (ms)", yaxis_title="ms per call", **LAYOUT)
    return fig


def top_operators(operators: pd.DataFrame) -> str:
    if operators.empty:
        return "<p class='note'>No operator tables.</p>"
    summed = operators.groupby(["label", "operator", "category"], as_index=False)["self_ms"].sum()
    rows = []
    for label, group in summed.groupby("label", sort=False):
        total = group["self_ms"].sum()
        for _, row in group.nlargest(TOP_OPERATORS, "self_ms").iterrows():
            rows.append([label, row["operator"], row["category"], row["self_ms"],
                         f"{row['self_ms'] / total:.0%}" if total > 0 else ""])
    return html_table(["impl", "operator", "category", "self ms per call", "share of impl"], rows)


def trace_links(run: RunInfo, frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("case", "files", "overhead", "host share", "python share",
                                              "J per call", "profile"))
    body = []
    for _, row in frame.iterrows():
        folder = store.case_dir(run.path, row["case_id"]).resolve()
        links = " ".join(f"<a href='{esc((folder / name).as_uri())}'>{esc(name)}</a>"
                         for name in (store.TRACE, store.MEMORY_SNAPSHOT, store.STACKS) if (folder / name).exists())
        cells = [esc(case_name(row, _axes(frame))), links] + [
            number(row.get(metric)) for metric in ("profile_overhead_ratio", "profile_host_share",
                                                   "profile_python_share", "profile_energy_j_per_call")]
        cells.append(esc(row["error"]) if row["error"] else "ok")
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
