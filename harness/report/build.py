"""From run folders to one HTML report: the headline, then a page per workload and family
built for its question, the profiles, the claims these runs measure, what failed, and
the environments."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from harness.metrics import higher_is_better
from harness.report import data, headline, profile_section, tables
from harness.report.page import PageSection, Part, render
from harness.report.pages import common, compression, generate, generic, model, serve, train
from harness.report.style import esc

PAGES = {"generate": generate.parts, "serve": serve.parts, "train": train.parts, "model": model.parts,
         "compression": compression.parts}
QUESTIONS = {
    "generate": "how fast each architecture and strategy decodes, and what it costs",
    "serve": "how much traffic each policy serves, and at what latency",
    "train": "how well each architecture learns for the same budget",
    "model": "how time and memory grow with sequence length, per architecture",
    "op": "which implementation is fastest at each size, and is it right",
    "compression": "what each compression method saves in bytes and time, and what it costs in quality",
}


def build_report(run_paths: list[Path], metric: str | None = None, baseline: str | None = None) -> tuple[str, int]:
    """(HTML text, number of figures) for the runs; raises UserError for bad input. Without a
    metric each page ranks by its workload's own (tokens/s for generate and model, goodput for
    serve, the first quality metric for train, median_ms otherwise)."""
    html, figures = build_pages(run_paths, metric, baseline)
    return html, len(figures)


def build_pages(run_paths: list[Path], metric: str | None = None,
                baseline: str | None = None) -> tuple[str, list[tuple[str, go.Figure]]]:
    """(HTML text, [(name, figure)] in page order) — the names are what --static writes."""
    frame, runs = data.load_runs(run_paths)
    if metric is not None:
        data.check_request(frame, runs, metric, baseline)
    else:  # each page picks its own; a run whose every case failed still gets its report
        data.check_baseline(frame, baseline)
    sections = data.sections(frame, runs, baseline)
    chosen = {id(s): common.page_metric(s, metric) for s in sections}
    verdicts, total = tables.measured_claims(frame)
    top = "".join(headline.section_html(s, chosen[id(s)], verdicts) for s in sections)
    page = [PageSection("Headline", "headline", [Part(html=top)]),
            PageSection("Runs", "runs", [Part(html=tables.overview(runs, frame))])]
    for i, section in enumerate(sections):
        own = PAGES.get(section.workload, generic.parts)(section, runs, chosen[id(section)])
        page.append(PageSection(section.title, f"section-{i}", own, note=_page_note(section, chosen[id(section)])))
    page += profile_section.sections(runs)
    page.append(PageSection("Published claims", "claims", [Part(html=tables.claims(verdicts, total))]))
    failures = tables.failures(frame)
    if failures:
        page.append(PageSection("Cases that did not end ok", "failures", [Part(html=failures)]))
    page.append(PageSection("Environment", "environment", [Part(html=tables.environment(runs))]))
    title = "seqbench report: " + ", ".join(r.name for r in runs)
    intro = ("<p class='note'>Hover a point for its numbers; the camera icon above a chart saves it as "
             "an image. Hollow markers: noisy measurements (IQR/median above the suite's limit). Red "
             "crosses: wrong results, never counted as speed. Error bars: 95% CI of the median.</p>")
    return render(title, intro, page), figure_names(page)


def figure_names(page: list[PageSection]) -> list[tuple[str, go.Figure]]:
    """(file name, figure) for every figure: its page's title and its own, made unique."""
    named, seen = [], set()
    for section in page:
        for part in section.parts:
            if part.figure is None:
                continue
            name = "-".join(filter(None, (_slug(section.title), _slug(part.title)))) or "figure"
            unique = next(f"{name}-{i}" if i else name for i in range(len(seen) + 1)
                          if (f"{name}-{i}" if i else name) not in seen)
            seen.add(unique)
            named.append((unique, part.figure))
    return named


def _page_note(section: data.Section, metric: str) -> str:
    question = QUESTIONS.get(section.workload, "")
    better = "higher" if higher_is_better(metric) else "lower"
    return (f"{esc(question.capitalize()) + '. ' if question else ''}Ranked by {esc(metric)} ({better} is better; "
            f"<code>--metric</code> picks another); x axis: {esc(section.x)}.")


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
