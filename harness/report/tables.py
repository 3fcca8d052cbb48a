"""HTML tables of a report: overview, scaling exponents, crossovers, failures, environments.

Every cell is escaped here, so callers pass raw values.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.analysis.crossover import crossovers
from harness.analysis.scaling import fit_exponent
from harness.report.data import RunInfo, Section, run_tags
from harness.report.style import esc, number


def html_table(headers: list[str], rows: list[list[Any]], css: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return number(value)
    return "" if value is None else esc(value)


def overview(runs: list[RunInfo], frame: pd.DataFrame) -> str:
    """One row per run; with several, the short tag (R1, R2, ...) their charts' legends use."""
    rows, tags = [], run_tags(runs)
    for run in runs:
        own = frame[frame["run"] == run.name]
        counts = ", ".join(f"{n} {s}" for s, n in own["status"].value_counts().items())
        rows.append(([tags[run.name]] if len(runs) > 1 else [])
                    + [run.name, run.suite.get("name", ""), run.suite.get("description", ""),
                       run.env.get("device", ""), run.env.get("collected_at", ""), len(own), counts])
    headers = ["run", "suite", "description", "device", "collected", "cases", "status"]
    return html_table((["in legends"] if len(runs) > 1 else []) + headers, rows)


def exponents(section: Section, metric: str) -> str:
    """Fitted exponents of time and memory against the swept axis, per impl and run."""
    if not pd.api.types.is_numeric_dtype(section.frame[section.x]) or section.frame[section.x].nunique() < 2:
        return "<p class='note'>No numeric sweep to fit exponents on.</p>"
    by = ["run", "label"] + section.facets
    time = fit_exponent(section.frame, x=section.x, y=metric, by=by)
    memory = (fit_exponent(section.frame, x=section.x, y="peak_extra_bytes", by=by)
              if "peak_extra_bytes" in section.frame else pd.DataFrame(columns=by + ["exponent", "r2"]))
    if time.empty and memory.empty:
        return "<p class='note'>Too few ok points to fit exponents.</p>"
    merged = time.merge(memory, on=by, how="outer", suffixes=("_time", "_memory"))
    keys = by if len(section.runs) > 1 else by[1:]
    rows = [[r[k] for k in keys] + [r.get("exponent_time"), r.get("r2_time"), r.get("exponent_memory"),
                                     r.get("r2_memory"), _int(r.get("n_points_time"))]
            for _, r in merged.iterrows()]
    return html_table(keys + [f"{metric} exponent", "r²", "peak_extra_bytes exponent", "r²", "points"], rows)


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, (int, float)) and not math.isnan(value) else value


def crossover_table(section: Section, speedup_frame: pd.DataFrame) -> str:
    if speedup_frame.empty or not pd.api.types.is_numeric_dtype(section.frame[section.x]):
        return "<p class='note'>No crossovers: needs a numeric sweep and a baseline.</p>"
    by = ["run", "label"] + section.facets
    table = crossovers(speedup_frame, section.x, by)
    if table.empty:
        return "<p class='note'>Too few ok points on both sides to find crossovers.</p>"
    keys = by if len(section.runs) > 1 else by[1:]
    rows = []
    for _, r in table.iterrows():
        rows.append([r[k] for k in keys] + [_crossover_text(r, section.x, section.baseline),
                                             f"{number(r['x_min'])}–{number(r['x_max'])}"])
    return html_table(keys + [f"vs {section.baseline}", f"{section.x} range"], rows)


def _crossover_text(row: pd.Series, x: str, baseline: str | None) -> str:
    if row["faster"] == "everywhere":
        return f"faster than {baseline} at every {x}"
    if row["faster"] == "nowhere":
        return f"slower than {baseline} at every {x}"
    if row["faster"] == "mixed":
        return f"crosses several times, first near {x}={number(row['crossover'])}"
    return f"faster {row['faster']} {x} ≈ {number(row['crossover'])}"


def failures(frame: pd.DataFrame, section: Section | None = None) -> str:
    """Every case that did not end ok, with its reason; the case is named by its own swept axes
    (and, in the table for the whole report, by its workload and family)."""
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return ""
    rows = [([] if section else [f"{r['workload']} / {r['family']}"])
            + [r["run"], r["label"], _case_text(r), r["status"], r.get("reason", "")] for _, r in bad.iterrows()]
    headers = ([] if section else ["workload"]) + ["run", "impl", "case", "status", "reason"]
    return html_table(headers, rows, css="failures" if section else "failures all")


def _case_text(row: pd.Series) -> str:
    axes = row["axes"] if isinstance(row.get("axes"), list) else []
    return ", ".join(f"{a}={row[a]}" for a in axes if a in row and _present(row[a]))


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


EFFICIENCY = [("pct_roofline", "% of roofline"), ("pct_peak_flops", "% of peak FLOP/s"),
              ("pct_peak_bandwidth", "% of peak bandwidth"), ("peak_ratio", "peak memory / theoretical")]


def efficiency(section: Section) -> str:
    """Per impl (and run, precision, direction), over its ok cases: median and maximum of
    the percent of the device's ceilings reached and of the ratio of measured peak memory
    to the impl's theoretical peak (empty when the runs have none of these)."""
    frame = section.frame[section.frame["status"] == "ok"]
    shown = [(c, title) for c, title in EFFICIENCY if c in frame and frame[c].notna().any()]
    if not shown:
        return ""
    by = ["run", "label"] + [c for c in ("precision", "direction") if c in frame and frame[c].nunique() > 1]
    keys = by if section.multi_run else by[1:]
    rows = []
    for key, group in frame.groupby(by, sort=False, dropna=False):
        cells = [_median_and_max(group[c]) for c, _ in shown]
        if any(cells):
            values = dict(zip(by, key if isinstance(key, tuple) else (key,)))
            rows.append([values[k] for k in keys] + cells + [len(group)])
    return html_table(keys + [f"{title} (median / max)" for _, title in shown] + ["cases"], rows)


def _median_and_max(values: pd.Series) -> str:
    values = values.dropna()
    return "" if values.empty else f"{number(values.median())} / {number(values.max())}"


def environment(runs: list[RunInfo]) -> str:
    """env.json of each run side by side; rows where runs differ are highlighted."""
    keys = list(dict.fromkeys(k for run in runs for k in run.env))
    rows = []
    for key in keys:
        values = [run.env.get(key) for run in runs]
        rows.append([key] + [v if not isinstance(v, (dict, list)) else str(v) for v in values])
    table = html_table(["key"] + [run.name for run in runs], rows, css="env")
    calibrated = [run.name for run in runs if run.calibration]
    note = (f"Calibration (device ceilings) found for: {', '.join(calibrated)}." if calibrated
            else "No calibration file (results/calibration-&lt;env_id&gt;.json): rooflines show no ceilings.")
    return table + f"<p class='note'>{esc(note) if calibrated else note}</p>"


def claims(verdicts: list, total: int) -> str:
    """The published claims (claims/claims.yaml) these runs measure (measured_claims), with
    their verdicts; the others are counted in one line with the command that lists them."""
    from harness.claims.present import COLUMNS
    from harness.commands.claims import rows

    note = (f"<p class='note'>{len(verdicts)} of {total} published claims are measured by these runs; "
            "<code>python -m harness claims RUN ...</code> lists every claim and what would measure it.</p>")
    if not verdicts:
        return note
    cells = [[row[0].replace("**", "")] + row[1:] for row in rows(verdicts)]
    return note + html_table(list(COLUMNS), cells)


def measured_claims(frame: pd.DataFrame) -> tuple[list, int]:
    """(verdicts of the claims whose suite these runs ran and that they could judge, number
    of claims in all). Claims of other suites are not evaluated: they cannot be measured here."""
    from harness.claims import model
    from harness.claims.evaluate import JUDGED, evaluate

    every = model.load()
    if "suite" in frame:  # a claim is measured by its own suite's records
        suites = set(frame["suite"].dropna())
        # a suite file that does not mention a run's suite name cannot be that suite: reading the
        # text is cheap, parsing every claim's suite is not (a second a report)
        every_here = [c for c in every if _mentions(c.suite_path, suites) and c.suite_name in suites]
    else:
        every_here = every
    device = "cuda" if "device" in frame and (frame["device"] == "cuda").any() else "cpu"
    verdicts = [evaluate(c, frame, device) for c in every_here]
    return [v for v in verdicts if v.verdict in JUDGED], len(every)


def _mentions(path, names: set[str]) -> bool:
    try:
        text = path.read_text()
    except OSError:
        return True  # let suite_name decide (it falls back to the file's stem)
    return any(name in text for name in names) or path.stem in names


# Distances from a reference implementation: they say whether an impl is right (within its
# precision's tolerance), not how good a model is
REFERENCE_DISTANCES = [("rel_err", "relative error"), ("max_abs_err", "largest error"),
                       ("exact_rel_err", "relative error vs exact attention"),
                       ("grad_rel_err", "gradient relative error"), ("tolerance", "tolerance")]


def correctness(section: Section) -> str:
    """Per impl (and run): the largest distance from its reference over its checked cases,
    the tolerance, and how many cases were within it ('' when nothing was checked)."""
    frame = section.frame[section.frame["status"].isin(["ok", "wrong"])]
    shown = [(c, title) for c, title in REFERENCE_DISTANCES if c in frame and frame[c].notna().any()]
    if not shown:
        return ""
    by = ["run", "label"] if section.multi_run else ["label"]
    rows = []
    for key, group in frame.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        checked = group[shown[0][0]].notna().sum()
        rows.append(list(key) + [group[c].max() for c, _ in shown]
                    + [f"{(group['status'] == 'ok').sum()} of {len(group)}", int(checked)])
    headers = [title if column == "tolerance" else f"max {title}" for column, title in shown]
    return html_table(by + headers + ["ok (within tolerance)", "checked"], rows)
