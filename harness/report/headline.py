"""The headline at the top of a report: per workload and family, who wins at each size and by
how much (a 95% interval from the raw samples, harness.claims.interval), where an impl
overtakes the baseline, what went wrong or failed, and the verdicts of the claims measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis.crossover import crossovers
from harness.analysis.speedup import speedups
from harness.claims import interval
from harness.metrics import higher_is_better
from harness.report.data import Section
from harness.report.style import esc, number, value_text
from harness.report.tables import html_table

FAILED = ("wrong", "error", "oom", "timeout")
MAX_CROSSOVERS = 8


@dataclass
class Lead:
    """The best contender at one point of one setting, and its margin over the second."""

    x: object
    setting: str
    winner: str
    runner_up: str
    margin: interval.Estimate  # above 1: the winner is better, in the metric's own direction


def contenders(section: Section) -> str:
    """What competes: the impls, or, where one impl runs, its first categorical swept axis
    (serving policies, decoding strategies)."""
    if section.frame["label"].nunique() > 1:
        return "label"
    if _size(section) is None:
        return section.x
    for axis in section.facets:
        if not pd.api.types.is_numeric_dtype(section.frame[axis]):
            return axis
    return "label"


def _size(section: Section) -> str | None:
    """The size axis, where the x axis is one (a number), else None."""
    column = section.frame[section.x]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return section.x if numeric and section.x != "point" else None


def leads(section: Section, metric: str) -> list[Lead]:
    """The winner at each (setting, size), over ok cases, with its margin's 95% interval."""
    who, size = contenders(section), _size(section)
    if metric not in section.frame:  # every case failed, or none measured it
        return []
    settings = [f for f in section.facets if f != who]
    ok = section.frame[(section.frame["status"] == "ok") & section.frame[metric].notna()]
    if section.multi_run:
        settings = ["run"] + settings
    rng = interval.generator()
    found = []
    keys = settings + ([size] if size else [])
    for key, rows in (ok.groupby(keys, sort=True, dropna=False) if keys else [((), ok)]):
        key = key if isinstance(key, tuple) else (key,)
        key = key if size else key + ("every size",)
        best = rows.sort_values(metric, ascending=not higher_is_better(metric)).drop_duplicates(who)
        if len(best) < 2:
            continue
        first, second = best.iloc[0], best.iloc[1]
        draws = interval.ratio(interval.column_draws(first, metric, rng), interval.column_draws(second, metric, rng))
        estimate = draws.estimate()
        if not higher_is_better(metric):  # a time: the second's over the first's
            estimate = _inverse(estimate)
        setting = ", ".join(f"{c}={value_text(v)}" for c, v in zip(settings, key[:-1]))
        found.append(Lead(key[-1], setting, str(first[who]), str(second[who]), estimate))
    return found


def _inverse(e: interval.Estimate) -> interval.Estimate:
    low, high = (None, None) if not e.has_interval else (1 / e.high, 1 / e.low)
    return interval.Estimate(1 / e.value, low, high, e.how)


def _plural(axis: str) -> str:
    return "impls" if axis == "label" else f"{axis} values"


def leads_table(section: Section, metric: str) -> str:
    """One row per size: the contender that wins most settings there, in how many, and its
    margins over the runner-up (each with its interval, or why it has none)."""
    found = leads(section, metric)
    if not found:
        return "<p class='note'>No winner to name: fewer than two contenders with ok cases at any point.</p>"
    rows = []
    for x, group in _by_x(found):
        wins = pd.Series([lead.winner for lead in group]).value_counts()
        top = wins.index[0]
        own = [lead for lead in group if lead.winner == top]
        rows.append([value_text(x), top, f"{wins.iloc[0]} of {len(group)}", _margins(own),
                     ", ".join(dict.fromkeys(lead.runner_up for lead in own))])
    return html_table([_size(section) or "size", "winner", "settings won", f"by (95% interval; {metric})", "runner-up"], rows)


def _by_x(found: list[Lead]) -> list[tuple[object, list[Lead]]]:
    grouped: dict = {}
    for lead in found:
        grouped.setdefault(lead.x, []).append(lead)
    return list(grouped.items())


def _margins(own: list[Lead]) -> str:
    """'1.8x [1.6, 2.0]' for one setting; for several, the range and how many are decisive."""
    if len(own) == 1:
        return _margin_text(own[0].margin)
    values = [lead.margin.value for lead in own]
    decisive = sum(lead.margin.has_interval and lead.margin.low > 1 for lead in own)
    return f"{min(values):.3g}x–{max(values):.3g}x; interval above 1 in {decisive} of {len(own)}"


def _margin_text(e: interval.Estimate) -> str:
    if e.value == 1 and (not e.has_interval or e.low == e.high):
        return "tied (equal values)"
    if not e.has_interval:
        return f"{e.value:.3g}x (no interval: {e.how})"
    verdict = "" if e.low > 1 else " (not separable)"
    return f"{e.value:.3g}x [{e.low:.3g}, {e.high:.3g}]{verdict}"


def crossover_lines(section: Section, metric: str) -> list[str]:
    """Where an impl starts or stops beating the baseline along the size axis."""
    if (not section.baseline or metric not in section.frame
            or not pd.api.types.is_numeric_dtype(section.frame[section.x])):
        return []
    table = speedups(section.frame, section.baseline, section.axes or [section.x], metric)
    if table.empty:
        return []
    by = ["run", "label"] + section.facets
    found = crossovers(table, section.x, by)
    found = found[found["faster"].isin(["above", "below", "mixed"])]
    lines = []
    for _, row in found.head(MAX_CROSSOVERS).iterrows():
        where = ", ".join(f"{f}={value_text(row[f])}" for f in section.facets)
        how = ("crosses several times, first" if row["faster"] == "mixed"
               else f"faster than {section.baseline} {row['faster']}")
        lines.append(f"{row['label']} {how} {section.x} ≈ {number(row['crossover'])}" + (f" ({where})" if where else ""))
    if len(found) > MAX_CROSSOVERS:
        lines.append(f"… and {len(found) - MAX_CROSSOVERS} more (the crossover table below)")
    return lines


def failure_line(frame: pd.DataFrame) -> str:
    """'2 wrong (a, b); 1 error (c)' and the skipped count; '' when every case ended ok."""
    parts = []
    for status in FAILED:
        bad = frame[frame["status"] == status]
        if len(bad):
            parts.append(f"{len(bad)} {status} ({', '.join(dict.fromkeys(bad['label'].astype(str)))})")
    skipped = int((frame["status"] == "skipped").sum())
    if skipped:
        parts.append(f"{skipped} skipped (could not run here; the failures table says why)")
    return "; ".join(parts)


def section_html(section: Section, metric: str, verdicts: list) -> str:
    """The headline of one section, already escaped."""
    ok = int((section.frame["status"] == "ok").sum())
    better = "higher" if higher_is_better(metric) else "lower"
    lines = [f"<h3>{esc(section.title)}</h3>",
             f"<p class='note'>{ok} of {len(section.frame)} cases ok; {esc(_plural(contenders(section)))} ranked by "
             f"{esc(metric)} ({better} is better){' at each ' + esc(_size(section)) if _size(section) else ''}; "
             "a setting is one combination of the other swept axes.</p>",
             leads_table(section, metric)]
    bullets = [f"<li>{esc(line)}</li>" for line in crossover_lines(section, metric)]
    failed = failure_line(section.frame)
    if failed:
        bullets.append(f"<li><b>Not ok:</b> {esc(failed)}</li>")
    own = [v for v in verdicts if v.claim.suite_name in set(section.frame["suite"].dropna())]
    bullets += [f"<li>Claim <b>{esc(v.claim.id)}</b>: {esc(v.verdict)} — measured {esc(v.measured)}</li>"
                for v in own]
    return "".join(lines) + (f"<ul>{''.join(bullets)}</ul>" if bullets else "")

