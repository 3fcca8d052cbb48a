"""From run folders to one HTML report: which charts and tables each section gets."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from harness import metrics
from harness.metrics import higher_is_better
from harness.analysis.speedup import speedups
from harness.report import data, figures, profile_section, rlhf, tables
from harness.report.page import PageSection, Part, render
from harness.report.style import esc

HEATMAP_KEY = ("Blank cells with a cross: a side was wrong (red) or failed (orange); points skipped on "
               "either side are left out.")


def build_report(run_paths: list[Path], metric: str | None = None, baseline: str | None = None) -> tuple[str, int]:
    """(HTML text, number of figures) for the runs; raises UserError for bad input. Without a
    metric: median_ms, or for runs that measure no time (train) their first quality metric."""
    frame, runs = data.load_runs(run_paths)
    metric = metric or data.default_metric(frame, runs)
    data.check_request(frame, runs, metric, baseline)
    page = [PageSection("Runs", "runs", [Part(html=tables.overview(runs, frame))])]
    for i, section in enumerate(data.sections(frame, runs, baseline)):
        page.append(PageSection(section.title, f"section-{i}", section_parts(section, runs, metric)))
    page += profile_section.sections(runs)
    page.append(PageSection("Published claims", "claims", [Part(html=tables.claims(frame))]))
    page.append(PageSection("Cases that did not end ok", "failures", [Part(html=tables.failures(frame))]))
    page.append(PageSection("Environment", "environment", [Part(html=tables.environment(runs))]))
    title = "seqbench report: " + ", ".join(r.name for r in runs)
    better = "higher" if higher_is_better(metric) else "lower"
    intro = (f"<p class='note'>Metric: {esc(metric)} ({better} is better; <code>--metric</code> picks another). "
             "Hover a point for its numbers. Hollow markers: noisy measurements "
             "(IQR/median above the suite's limit). Red crosses: wrong results, never counted as "
             "speed. Error bars: 95% CI of the median.</p>")
    figures_count = sum(p.figure is not None for s in page for p in s.parts)
    return render(title, intro, page), figures_count


def section_parts(section: data.Section, runs: list[data.RunInfo], metric: str) -> list[Part]:
    facets = f" Other swept axes ({esc(', '.join(section.facets))}) are in the dropdown." if section.facets else ""
    parts = [Part(f"{metric} vs {section.x}", figures.lines_vs_axis(
        section, metric, metrics.title(metric), f"{metric} vs {section.x}",
        with_ci=metric == "median_ms"), caption=f"One line per impl{' and run' if section.multi_run else ''}.{facets}")]
    table = speedups(section.frame, section.baseline, _axes(section), metric) if section.baseline else None
    heatmap = figures.speedup_heatmap(section, table, metric) if table is not None and not table.empty else None
    if heatmap is not None:
        parts.append(Part(f"Speedup vs {section.baseline}", heatmap,
                          caption=f"Baseline: {esc(section.baseline)} ({esc(section.baseline_note)}). "
                                  f"{HEATMAP_KEY}"))
    else:
        why = "every point was skipped on one side" if table is not None and not table.empty else section.baseline_note
        parts.append(Part("Speedup", html=f"<p class='note'>No speedups: {esc(why)}.</p>"))
    if section.multi_run:
        parts += runs_side_by_side(section, metric)
    if "peak_extra_bytes" in section.frame and (section.frame["peak_extra_bytes"].fillna(0) > 0).any():
        parts.append(Part("Memory", figures.lines_vs_axis(section, "peak_extra_bytes", metrics.title("peak_extra_bytes"),
                                                          f"peak extra memory vs {section.x}")))
    roof = figures.roofline(section, runs)
    if roof is not None:
        parts.append(Part("Roofline", roof, caption="One precision at a time (dropdown). Ceilings from "
                                                    "results/calibration-&lt;env_id&gt;.json when present "
                                                    "(python -m harness calibrate)."))
    efficiency = tables.efficiency(section)
    if efficiency:
        parts.append(Part("Percent of peak and memory ratio", html=efficiency,
                          caption="Over each impl's ok cases. % of roofline: TFLOP/s reached over "
                                  "min(peak FLOP/s, bandwidth × FLOP/byte) at the case's intensity; peak "
                                  "memory / theoretical: measured peak extra memory over the impl's "
                                  "analytic peak (above 1: it holds more than it needs)."))
    quality = figures.quality_vs_speed(section, metric)
    if quality is not None:
        parts.append(Part("Quality vs speed", quality, caption="Pick a sweep point in the dropdown; "
                                                              "the dashed line is the Pareto front."))
    parts += rlhf.parts(section)  # the rlhf workload's own tables (none for other workloads)
    parts.append(Part("Scaling exponents", html=tables.exponents(section, metric),
                      caption=f"Slope of log(value) against log({esc(section.x)}), ok cases only: "
                              "2 means quadratic growth, 0 flat."))
    parts.append(Part(f"Crossovers vs {section.baseline}",
                      html=tables.crossover_table(section, table if table is not None else pd.DataFrame())))
    parts.append(Part("Not ok here", html=tables.failures(section.frame, section)))
    return parts


def _axes(section: data.Section) -> list[str]:
    """The axes speedups are matched on; with nothing swept, the one "point" column (data.sections)."""
    return section.axes or [section.x]


def runs_side_by_side(section: data.Section, metric: str) -> list[Part]:
    """Each impl in every run against itself in the first run: the same heatmap as the
    speedups, with the roles of run and impl swapped."""
    first, labels = section.runs[0], list(dict.fromkeys(section.frame["label"]))
    tags = section.frame["run"].map(section.tag)
    swapped = section.frame.assign(label=tags, run=section.frame["label"])
    table = speedups(swapped, section.tag(first), _axes(section), metric)
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
