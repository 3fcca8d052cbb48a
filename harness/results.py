"""Run folders: records appended as each case finishes, read back as pandas.

results/<suite>-<UTC timestamp>/
    suite.yaml       the suite as resolved (defaults filled in)
    env.json         where it ran (harness.env)
    records.jsonl    one JSON record per case, flushed and fsynced as it finishes
    records.parquet  the same as a table, written when the run completes
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.errors import UserError

RECORDS = "records.jsonl"
TABLE = "records.parquet"


class RecordWriter:
    """Appends records so that a killed run loses at most the case in flight."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / RECORDS
        _drop_partial_last_line(self.path)
        self._file = open(self.path, "a")

    def append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, default=_jsonable) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _drop_partial_last_line(path: Path) -> None:
    """A run killed mid-write leaves half a line; cut it so the file stays valid JSONL."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def read_records(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / RECORDS
    if not path.exists():
        raise UserError(f"{run_dir}: not a run folder (no {RECORDS})")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the last line of a killed run can be partial
    return records


def to_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per case: identity, params and metrics as columns, raw samples kept."""
    rows = []
    for r in records:
        row = {k: v for k, v in r.items() if k not in ("params", "metrics")}
        row.update(r.get("params", {}))
        row.update(r.get("metrics", {}))
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(run_dir: str | Path) -> Path:
    frame = to_frame(read_records(run_dir))
    path = Path(run_dir) / TABLE
    _parquet_safe(frame).to_parquet(path, index=False)
    return path


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing types (a param that is a number here, a string there) become strings."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column] if not _missing(v)}
            if len(kinds) > 1 and not kinds <= {int, float}:
                frame[column] = frame[column].map(lambda v: None if _missing(v) else str(v))
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def env(run: str | Path) -> dict[str, Any]:
    """The run's env.json; empty where it is absent or unreadable."""
    try:
        value = json.loads((Path(run) / "env.json").read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def hardware(run: str | Path) -> str | None:
    """What the run measured on: its GPU's name, else its CPU model."""
    measured_on = env(run)
    return measured_on.get("gpu") or measured_on.get("cpu_model")


def load(*runs: str | Path) -> pd.DataFrame:
    """The records of one or more run folders as one DataFrame, with a `run` column
    and a `hardware` column (the GPU, or the CPU model, from the run's env.json).

    Reads records.parquet when the run completed, else records.jsonl (a run in
    progress or interrupted)."""
    if len(runs) == 1 and isinstance(runs[0], (list, tuple)):
        runs = tuple(runs[0])
    frames = []
    for run in runs:
        run = Path(run)
        table = run / TABLE
        frame = pd.read_parquet(table) if table.exists() else to_frame(read_records(run))
        frame.insert(0, "run", run.name)
        frame.insert(1, "hardware", hardware(run))
        frames.append(frame)
    if not frames:
        raise UserError("no run folders given")
    return pd.concat(frames, ignore_index=True)
