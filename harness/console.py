"""What a run shows on the terminal: a progress bar, then a compact table.

Labels, reasons and paths are the user's text: they are shown as written, never read
as rich markup (`local[w=16]` stays `local[w=16]`, `[/x]` is not a closing tag)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # pandas is imported where a table is made: not before a run's first case
    import pandas as pd

console = Console(stderr=False, highlight=False)
MARKS = {"wrong": "✗ wrong", "skipped": "– skip", "oom": "oom", "timeout": "timeout", "error": "error"}
NOISY = "~"
MEANINGS = {NOISY: "noisy (IQR/median above measure.noisy_above)",
            "✗ wrong": "outside the reference's tolerance",
            "– skip": "not run (reason in the records)", "oom": "out of memory",
            "timeout": "killed at measure.timeout_s", "error": "failed (message in the records)"}


@contextmanager
def progress(total: int) -> Iterator[Any]:
    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=console, transient=True)
    with bar:
        task = bar.add_task("running", total=total)

        def advance(record: dict[str, Any]) -> None:
            mark = "" if record["status"] == "ok" else f" ({record['status']})"
            bar.update(task, advance=1, description=f"{record['label']}{mark}", refresh=True)

        yield advance


def summary_table(frame: pd.DataFrame, title: str) -> Table:
    """impl (x the other swept axes) by the main swept axis: median latency or status."""
    axes = list(frame["axes"].iloc[0]) if len(frame) and len(frame["axes"].iloc[0]) else []
    main = "seq_len" if "seq_len" in axes else (axes[0] if axes else None)
    others = [a for a in axes if a != main and frame[a].nunique(dropna=False) > 1]
    table = Table(title=Text(title), show_lines=False)
    table.add_column("impl")
    for axis in others:
        table.add_column(Text(axis))
    columns = sorted(frame[main].dropna().unique()) if main else [None]
    for value in columns:
        table.add_column(Text(f"{main}={value}" if main else "median"), justify="right")
    keys = ["label"] + others
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in key]
        for value in columns:
            match = group if main is None else group[group[main] == value]
            cells.append(_cell(match))
        table.add_row(*map(Text, cells))
    return table


def _cell(rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    row = rows.iloc[0]
    if row["status"] == "ok" and _present(row.get("median_ms")):
        noisy = NOISY if bool(row.get("noisy", False)) else ""
        return f"{noisy}{_ms(row['median_ms'])}"
    return MARKS.get(row["status"], row["status"])


def legend(frame: pd.DataFrame) -> str | None:
    """One line explaining the marks summary_table shows for `frame`, or None if it shows none."""
    shown = {_cell(frame.iloc[[i]]) for i in range(len(frame))}
    used = [mark for mark in MEANINGS
            if mark in shown or (mark == NOISY and any(cell.startswith(NOISY) for cell in shown))]
    return "; ".join(f"{mark}: {MEANINGS[mark]}" for mark in used) or None


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 1:
        return f"{value:.2f} ms"
    return f"{value * 1000:.1f} µs"


def status_counts(frame: pd.DataFrame) -> str:
    counts = frame["status"].value_counts()
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def check_table(frame: pd.DataFrame, title: str) -> Table:
    """One row per case of a check-only run: its point, status, the output's error against the
    reference and its tolerance, the gradients' error (their tolerance is the workload's), or why
    it did not run."""
    table = Table(title=Text(title))
    for column in ("impl", "point", "status", "error", "tolerance", "grad error", "reason"):
        numeric = column in ("error", "tolerance", "grad error")
        wraps = column in ("point", "reason")  # the rest stay whole; the reason gets the room left
        table.add_column(column, justify="right" if numeric else "left", no_wrap=not wraps, overflow="fold")
    for _, row in frame.iterrows():
        point = ", ".join(f"{axis}={row.get(axis)}" for axis in row["axes"])
        table.add_row(*map(Text, (str(row["label"]), point, MARKS.get(row["status"], row["status"]),
                                  _number(row.get("rel_err"), ".2e"), _number(row.get("tolerance"), ".1e"),
                                  _number(row.get("grad_rel_err"), ".2e"), str(row.get("reason") or ""))))
    return table


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if _present(value) else ""


def _present(value: Any) -> bool:
    """Not None and not NaN (a missing cell of a frame)."""
    return value is not None and value == value
