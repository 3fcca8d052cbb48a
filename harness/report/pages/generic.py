"""The generic page of one workload and family (op, classify, rlhf, ...): the metric against
the size axis, speedups against the baseline, memory, roofline, efficiency, quality against
speed (quality metrics only), correctness against the reference, exponents, crossovers."""
from __future__ import annotations

import dataclasses

import pandas as pd

from harness.analysis.speedup import speedups
from harness.report import figures, rlhf, tables
from harness.report.data import RunInfo, Section
from harness.report.page import Part
from harness.report.pages.common import has, left_out
from harness.report.style import esc

HEATMAP_KEY = ("Blank cells with a cross: a side was wrong (red) or failed (orange); points skipped on "
               "either side are left out.")


def parts(section: Section, runs: list[RunInfo], metric: str) -> list[Part]:
    facets = f" Other swept axes ({esc(', '.join(section.facets))}) are in the dropdown." if section.facets else ""
    if not has(section, metric):
        return [left_out(f"{metric} vs {section.x}", f"no ok case records {metric}")] + failure_parts(section)
    found = [Part(f"{metric} vs {section.x}", figures.lines_vs_axis(
        section, metric, f"{metric} vs {section.x}", with_ci=metric == "median_ms"),
        caption=f"One line per impl{' and run' if section.multi_run else ''}.{facets}")]
    table = speedups(section.frame, section.baseline, axes(section), metric) if section.baseline else None
    found += speedup_parts(section, table, metric)
    if section.multi_run:
        found += runs_side_by_side(section, metric)
    if has(section, "peak_extra_bytes") and (section.frame["peak_extra_bytes"].fillna(0) > 0).any():
        found.append(Part("Memory", figures.lines_vs_axis(section, "peak_extra_bytes",
                                                          f"peak extra memory vs {section.x}")))
    roof = figures.roofline(section, runs)
    if roof is not None:
        found.append(Part("Roofline", roof, caption="One precision at a time (dropdown). Ceilings from "
                                                    "results/calibration-&lt;env_id&gt;.json when present "
                                                    "(python -m harness calibrate)."))
    efficiency = tables.efficiency(section)
    if efficiency:
        found.append(Part("Percent of peak and memory ratio", html=efficiency,
                          caption="Over each impl's ok cases. % of roofline: TFLOP/s reached over "
                                  "min(peak FLOP/s, bandwidth × FLOP/byte) at the case's intensity; peak "
                                  "memory / theoretical: measured peak extra memory over the impl's "
                                  "analytic peak (above 1: it holds more than it needs)."))
    found += quality_parts(section, metric)
    found += rlhf.parts(section)  # the rlhf workload's own tables (none for other workloads)
    found += correctness_parts(section)
    found.append(Part("Scaling exponents", html=tables.exponents(section, metric),
                      caption=f"Slope of log(value) against log({esc(section.x)}), ok cases only: "
                              "2 means quadratic growth, 0 flat."))
    found.append(Part(f"Crossovers vs {section.baseline}",
                      html=tables.crossover_table(section, table if table is not None else pd.DataFrame())))
    found += failure_parts(section)
    return found


def speedup_parts(section: Section, table: pd.DataFrame | None, metric: str) -> list[Part]:
    heatmap = figures.speedup_heatmap(section, table, metric) if table is not None and not table.empty else None
    if heatmap is not None:
        return [Part(f"Speedup vs {section.baseline}", heatmap,
                     caption=f"Baseline: {esc(section.baseline)} ({esc(section.baseline_note)}). {HEATMAP_KEY}")]
    why = "every point was skipped on one side" if table is not None and not table.empty else section.baseline_note
    return [Part("Speedup", html=f"<p class='note'>No speedups: {esc(why)}.</p>")]


def quality_parts(section: Section, metric: str) -> list[Part]:
    """Quality against speed, where the section has a quality metric and a speed to set it against."""
    quality = figures.quality_metric(section.frame)
    speed = next((m for m in (metric, "tokens_per_s", "median_ms") if has(section, m) and m != quality), None)
    if quality is None or speed is None:
        return []
    figure = figures.quality_vs_speed(section, speed, quality)
    return [Part("Quality vs speed", figure, caption="Pick a sweep point in the dropdown; the dashed line is "
                                                     "the Pareto front.")] if figure is not None else []


def correctness_parts(section: Section) -> list[Part]:
    table = tables.correctness(section)
    if not table:
        return []
    return [Part("Correctness against the reference", html=table,
                 caption="Distance of each impl's output from its reference (fp64 or plain PyTorch) on the "
                         "check's inputs: round-off at the case's precision, not a quality. A case beyond the "
                         "tolerance is <code>wrong</code> and never counted as speed.")]


def failure_parts(section: Section) -> list[Part]:
    table = tables.failures(section.frame, section)
    return [Part("Not ok here", html=table)] if table else []


def axes(section: Section) -> list[str]:
    """The axes speedups are matched on; with nothing swept, the one "point" column (data.sections)."""
    return section.axes or [section.x]


def runs_side_by_side(section: Section, metric: str) -> list[Part]:
    """Each impl in every run against itself in the first run: the same heatmap as the
    speedups, with the roles of run and impl swapped."""
    first, labels = section.runs[0], list(dict.fromkeys(section.frame["label"]))
    tags = section.frame["run"].map(section.tag)
    swapped = section.frame.assign(label=tags, run=section.frame["label"])
    table = speedups(swapped, section.tag(first), axes(section), metric)
    by_run = dataclasses.replace(section, frame=swapped, baseline=section.tag(first), runs=labels,
                                 run_tags={label: label for label in labels})
    heatmap = figures.speedup_heatmap(by_run, table, metric) if not table["speedup"].isna().all() else None
    if heatmap is None:
        return [Part("Runs side by side", html="<p class='note'>No impl has ok cases at the same points "
                                                "in two runs.</p>")]
    return [Part(f"Runs side by side: each run vs {section.tag(first)}", heatmap,
                 caption=f"Rows: run · impl (runs as tagged in the Runs table). A cell compares the impl's "
                         f"{esc(metric)} in the row's run with the same impl at the same point in "
                         f"{section.tag(first)} ({esc(first)}): above 1, the row's run is better "
                         f"(faster, or higher for a rate). {HEATMAP_KEY}")]

