"""Where a run's profiles live and how they are read back.

results/<run>/profile/<case id>/
    summary.json           what the pass found: the metrics (profile_*), the time per category,
                           the hottest Python functions, the files beside it
    operators.jsonl        the per-operator table (operators.py), one row per line
    trace.json.gz          torch.profiler's Chrome trace: Perfetto (ui.perfetto.dev) or chrome://tracing
    memory_snapshot.pickle GPU only: the allocator's history, for pytorch.org/memory_viz
    stacks.txt             with --profile-stack: self time per Python stack (flamegraph.pl input)

A case profiled again (`harness profile`) replaces its folder; records.jsonl is never touched.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where frames are made: the runner imports this module before its first case
    import pandas as pd

FOLDER = "profile"
SUMMARY = "summary.json"
OPERATORS = "operators.jsonl"
TRACE = "trace.json.gz"
MEMORY_SNAPSHOT = "memory_snapshot.pickle"
STACKS = "stacks.txt"


@dataclass(frozen=True)
class Request:
    """Where the worker writes a case's profile, and whether with Python stacks."""

    out_dir: Path
    with_stack: bool = False


def request(run_dir: str | Path, case: Any) -> Request | None:
    """The profile the case's measure block asks for, written in `run_dir`; None if none."""
    if not case.measure.profile:
        return None
    return Request(case_dir(run_dir, case.id), case.measure.profile_stack)


def case_dir(run_dir: str | Path, case_id: str) -> Path:
    return Path(run_dir) / FOLDER / case_id


def fresh(out_dir: Path) -> Path:
    """An empty folder for a case's profile (a previous profile of the case removed)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    return out_dir


def write(out_dir: Path, summary: dict[str, Any], operators: list[dict[str, Any]]) -> None:
    (out_dir / OPERATORS).write_text("".join(json.dumps(row) + "\n" for row in operators))
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=1, default=_plain))


def _plain(value: Any) -> Any:
    """numpy scalars as numbers, anything else JSON cannot hold as its text."""
    return value.item() if hasattr(value, "item") else str(value)


def summary(out_dir: Path) -> dict[str, Any]:
    """One case's summary.json ({} if its pass never wrote one)."""
    try:
        return json.loads((out_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return {}


def summaries(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every profiled case's summary.json in the run, in case-index order."""
    found = []
    for path in sorted((Path(run_dir) / FOLDER).glob(f"*/{SUMMARY}")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable profile summary ({err})") from None
    return sorted(found, key=lambda s: s.get("index", 0))


def profiles(run_dir: str | Path) -> pd.DataFrame:
    """One row per profiled case: case_id, index, label, impl, workload, device, the swept params
    (as columns), error (empty when the pass ran) and every profile_* metric."""
    import pandas as pd

    rows = []
    for summary in summaries(run_dir):
        axes = {axis: summary.get("params", {}).get(axis) for axis in summary.get("axes", [])}
        rows.append({key: summary.get(key) for key in ("case_id", "index", "label", "impl", "workload", "device")}
                    | axes | {"error": summary.get("error", "")} | summary.get("metrics", {}))
    return pd.DataFrame(rows)


def operators(run_dir: str | Path) -> pd.DataFrame:
    """Every profiled case's operator table, one row per operator (and input shapes) per case,
    with the case's id and label in front."""
    import pandas as pd

    frames = []
    for summary in summaries(run_dir):
        path = case_dir(run_dir, summary["case_id"]) / OPERATORS
        if path.exists():
            table = pd.read_json(path, lines=True) if path.stat().st_size else pd.DataFrame()
            table.insert(0, "label", summary.get("label"))
            table.insert(0, "case_id", summary["case_id"])
            frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
