"""The train page: loss over steps, perplexity against evaluation length, accuracy on the
synthetic tasks, BLEU and exact match, and quality against training tokens/s at matched
parameter counts."""
from __future__ import annotations

import dataclasses

import pandas as pd

from harness.report import figures
from harness.report.data import Section, RunInfo
from harness.report.page import Part
from harness.report.pages import charts
from harness.report.pages.common import figure_or_reason, has, left_out
from harness.report.pages.generic import failure_parts
from harness.report.tables import html_table


def parts(section: Section, runs: list[RunInfo], metric: str) -> list[Part]:
    found = [figure_or_reason("Loss over steps", charts.loss_curves(section), "no ok case records a loss_curve"),
             figure_or_reason("Perplexity against evaluation length", charts.ppl_vs_length(section),
                              "no val_ppl_<n>x metrics (the suite evaluates at its training length only)",
                              "Each line: perplexity at 1x, 2x, 4x ... the length trained on; flat is good "
                              "extrapolation.")]
    for columns, title in ((["accuracy"], "Accuracy on the synthetic tasks"),
                           (["bleu", "exact_match"], "BLEU and exact match")):
        table = score_table(section, [c for c in columns if has(section, c)])
        found.append(Part(title, html=table) if table else left_out(title, f"no ok case records {' or '.join(columns)}"))
    found.append(quality_vs_throughput(section))
    return found + failure_parts(section)


def score_table(section: Section, columns: list[str]) -> str:
    """Rows: impl (and run); columns: each setting of the swept axes, one cell per score."""
    if not columns:
        return ""
    ok = section.frame[section.frame["status"] == "ok"]
    settings = [a for a in section.axes if ok[a].nunique(dropna=False) > 1]
    index = ["label"] + (["run"] if section.multi_run else [])
    rows, headers = [], []
    for key, group in ok.groupby(index, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = {}
        for _, row in group.iterrows():
            where = ", ".join(f"{a}={row[a]}" for a in settings) or "all"
            for c in columns:
                cells[f"{c}: {where}" if len(columns) > 1 or settings else c] = row[c]
        headers = list(dict.fromkeys(headers + list(cells)))
        rows.append((list(key), cells))
    return html_table(index + headers, [key + [cells.get(h) for h in headers] for key, cells in rows])


def quality_vs_throughput(section: Section) -> Part:
    """The section's quality metric against training tokens/s (train_steps x batch x seq_len over
    train_s), parameter counts in the hover."""
    title = "Quality against training tokens/s"
    quality = figures.quality_metric(section.frame)
    frame = section.frame
    if quality is None:
        return left_out(title, "no quality metric in the records")
    if not {"train_steps", "batch", "seq_len", "train_s"} <= set(frame.columns):
        return left_out(title, "the records lack train_steps, batch, seq_len or train_s")
    rate = frame["train_steps"] * frame["batch"] * frame["seq_len"] / frame["train_s"]
    derived = frame.assign(tokens_per_s=pd.to_numeric(rate, errors="coerce"))
    figure = figures.quality_vs_speed(_with(section, derived), "tokens_per_s", quality)
    params = ""
    if "param_count" in frame and frame["param_count"].notna().any():
        counts = frame["param_count"].dropna()
        params = f" Parameters {counts.min():,.0f}–{counts.max():,.0f} (matched by the suite's budget)."
    return figure_or_reason(title, figure, "no ok case has both", "Tokens/s: training tokens (steps × batch × "
                            f"seq_len) over the training time.{params}")


def _with(section: Section, frame: pd.DataFrame) -> Section:
    return dataclasses.replace(section, frame=frame)
