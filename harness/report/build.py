"""From run folders to one HTML report: which charts and tables each section gets."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.analysis.speedup import speedups
from harness.report import data, figures, tables
from harness.report.page import PageSection, Part, render
from harness.report.style import esc

METRIC_TITLES = {"median_ms": "median time per call (ms)", "peak_extra_bytes": "peak extra memory (bytes)"}


def build_report(run_paths: list[Path], metric: str = "median_ms", baseline: str | None = None) -> tuple[str, int]:
    """(HTML text, number of figures) for the runs; raises UserError for bad input."""
    frame, runs = data.load_runs(run_paths)
    data.check_request(frame, metric, baseline)
    page = [PageSection("Runs", "runs", [Part(html=tables.overview(runs, frame))])]
    for i, section in enumerate(data.sections(frame, runs, baseline)):
        page.append(PageSection(section.title, f"section-{i}", section_parts(section, runs, metric)))
    page.append(PageSection("Published claims", "claims", [Part(html=tables.claims(frame))]))
    page.append(PageSection("Cases that did not end ok", "failures", [Part(html=tables.failures(frame))]))
    page.append(PageSection("Environment", "environment", [Part(html=tables.environment(runs))]))
    title = "seqbench report: " + ", ".join(r.name for r in runs)
    intro = ("<p class='note'>Hover a point for its numbers. Hollow markers: noisy measurements "
             "(IQR/median above the suite's limit). Red crosses: wrong results, never counted as "
             "speed. Error bars: 95% CI of the median.</p>")
    figures_count = sum(p.figure is not None for s in page for p in s.parts)
    return render(title, intro, page), figures_count


def section_parts(section: data.Section, runs: list[data.RunInfo], metric: str) -> list[Part]:
    facets = f" Other swept axes ({esc(', '.join(section.facets))}) are in the dropdown." if section.facets else ""
    parts = [Part(f"{metric} vs {section.x}", figures.lines_vs_axis(
        section, metric, METRIC_TITLES.get(metric, metric), f"{metric} vs {section.x}",
        with_ci=metric == "median_ms"), caption=f"One line per impl{' and run' if section.multi_run else ''}.{facets}")]
    table = speedups(section.frame, section.baseline, section.axes, metric) if section.baseline else None
    if table is not None and not table.empty:
        parts.append(Part(f"Speedup vs {section.baseline}", figures.speedup_heatmap(section, table, metric),
                          caption=f"Baseline: {esc(section.baseline)} ({esc(section.baseline_note)}). "
                                  "Blank cells with a cross: a side was wrong or failed."))
    else:
        parts.append(Part("Speedup", html=f"<p class='note'>No speedups: {esc(section.baseline_note)}.</p>"))
    if "peak_extra_bytes" in section.frame and (section.frame["peak_extra_bytes"].fillna(0) > 0).any():
        parts.append(Part("Memory", figures.lines_vs_axis(section, "peak_extra_bytes", "peak extra bytes",
                                                          f"peak extra memory vs {section.x}")))
    roof = figures.roofline(section, runs)
    if roof is not None:
        parts.append(Part("Roofline", roof, caption="Ceilings from results/calibration-&lt;env_id&gt;.json "
                                                    "when present (python -m harness calibrate)."))
    quality = figures.quality_vs_speed(section, metric)
    if quality is not None:
        parts.append(Part("Quality vs speed", quality, caption="Pick a sweep point in the dropdown; "
                                                              "the dashed line is the Pareto front."))
    parts.append(Part("Scaling exponents", html=tables.exponents(section, metric),
                      caption=f"Slope of log(value) against log({esc(section.x)}), ok cases only: "
                              "2 means quadratic growth, 0 flat."))
    parts.append(Part(f"Crossovers vs {section.baseline}",
                      html=tables.crossover_table(section, table if table is not None else pd.DataFrame())))
    parts.append(Part("Not ok here", html=tables.failures(section.frame, section)))
    return parts

