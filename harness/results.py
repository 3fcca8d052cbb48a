"""Run folders: records appended as each case finishes, read back as pandas.

results/<suite>-<UTC timestamp>/
    suite.yaml       the suite as resolved (defaults filled in)
    env.json         where it ran (harness.env)
    records.jsonl    one JSON record per case, flushed and fsynced as it finishes
    records.parquet  the same as a table, written when the run completes
    run.lock         while a run or resume writes it: who (harness.run_lock)
    resumes.yaml     resumes forced past a changed measure block: what changed, when
    profile/         with --profile (or `harness profile`): one folder per profiled case (harness.profile.store)
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from harness.errors import UserError
from harness.profile import store as profile_store

if TYPE_CHECKING:  # imported where frames are made: a run writes records long before it needs pandas
    import pandas as pd

RECORDS = "records.jsonl"
TABLE = "records.parquet"


class RecordWriter:
    """Appends records so that a killed run loses at most the case in flight.

    Each record is one write of one line, fsynced before the next case starts. A write
    that fails (disk full, a folder gone read-only) is undone, so the file never holds
    half a line written by a live run; the error is raised to the runner."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / RECORDS
        self.note = mend_last_line(self.path)  # what resuming found at the end of the file, if anything
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=_jsonable) + "\n").encode()
        size = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(line):
                written += os.write(self._fd, line[written:])
            os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, size)  # no half line left behind
            except OSError:
                pass
            raise

    def close(self) -> None:
        os.close(self._fd)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def mend_last_line(path: Path) -> str | None:
    """A run killed mid-write can leave a last line without its newline. A whole record that
    lacks only the newline is kept (the newline is added); anything else is cut, and its case
    runs again. Returns what was done, in words, or None when the file ends cleanly."""
    if not path.exists():
        return None
    data = path.read_bytes()
    tail = data[data.rfind(b"\n") + 1:]
    if not tail:
        return None
    if _record_or_none(tail) is not None:
        with open(path, "ab") as handle:
            handle.write(b"\n")
        return f"{path}: its last record was written without a newline; kept"
    with open(path, "r+b") as handle:
        handle.truncate(len(data) - len(tail))
    return f"{path}: its last line was cut off mid-write ({len(tail)} bytes); that case runs again"


def _record_or_none(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return None
    return value if isinstance(value, dict) and "case_id" in value and "status" in value else None


def read_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of a run folder, in the order written.

    A last line without its newline (a run killed mid-write) counts if it is a whole
    record and is left out if not: its case was in flight. A damaged line anywhere else,
    or a case recorded twice, is a UserError naming the file and the lines."""
    path = Path(run_dir) / RECORDS
    if not path.exists():
        raise UserError(f"{run_dir}: not a run folder (no {RECORDS})")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    numbered = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _record_or_none(line)
        if record is None:
            raise UserError(f"{path}:{number}: not a record (damaged JSON, or a line without case_id and "
                            "status); fix or delete that line, and --resume runs its case again")
        numbered.append((number, record))
    last = _record_or_none(torn) if torn else None
    if last is not None:
        numbered.append((len(lines) + 1, last))
    _refuse_duplicates(path, numbered)
    return [record for _, record in numbered]


def _refuse_duplicates(path: Path, numbered: list[tuple[int, dict[str, Any]]]) -> None:
    first_line: dict[str, int] = {}
    for number, record in numbered:
        case_id = record["case_id"]
        if case_id in first_line:
            raise UserError(f"{path}: case {case_id} ({record.get('label')}) is recorded on lines "
                            f"{first_line[case_id]} and {number}; a run folder holds each case once "
                            "(two runs wrote into it): keep one of the lines")
        first_line[case_id] = number


def to_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per case: identity, params and metrics as columns, raw samples kept."""
    import pandas as pd

    rows = []
    for r in records:
        row = {k: v for k, v in r.items() if k not in ("params", "metrics", "metric_samples")}
        row.update(r.get("params", {}))
        row.update(r.get("metrics", {}))
        # a metric's own per-call samples, beside samples_ms: samples_<metric>
        row.update({f"samples_{name}": values for name, values in (r.get("metric_samples") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(run_dir: str | Path) -> Path:
    """records.parquet from records.jsonl, written whole or not at all (a full disk leaves
    no half-written table that would hide the records)."""
    frame = to_frame(read_records(run_dir))
    if "index" in frame:  # in the suite's order: an executor running cases at once writes them as they end
        frame = frame.sort_values("index", kind="stable", ignore_index=True)
    path = Path(run_dir) / TABLE
    partial = path.with_name(TABLE + ".partial")
    try:
        _parquet_safe(frame).to_parquet(partial, index=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
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


def _read_table(table: Path) -> pd.DataFrame | None:
    """records.parquet, or None if it cannot be read (the records in records.jsonl are the truth)."""
    import pandas as pd

    try:
        return pd.read_parquet(table)
    except (OSError, ValueError):  # pyarrow's ArrowIOError and ArrowInvalid derive from these
        return None


def load(*runs: str | Path) -> pd.DataFrame:
    """The records of one or more run folders as one DataFrame, with a `run` column
    and a `hardware` column (the GPU, or the CPU model, from the run's env.json).

    Reads records.parquet when the run completed, else records.jsonl (a run in
    progress or interrupted)."""
    import pandas as pd

    if len(runs) == 1 and isinstance(runs[0], (list, tuple)):
        runs = tuple(runs[0])
    frames = []
    for run in runs:
        run = Path(run)
        table = run / TABLE
        frame = _read_table(table) if table.exists() else None
        frame = to_frame(read_records(run)) if frame is None else frame
        if "case_id" in frame and frame["case_id"].duplicated().any():
            twice = frame.loc[frame["case_id"].duplicated(), "case_id"].iloc[0]
            raise UserError(f"{table}: case {twice} appears more than once; a run folder holds each case "
                            "once (two runs wrote into it)")
        frame.insert(0, "run", run.name)
        frame.insert(1, "hardware", hardware(run))
        frames.append(frame)
    if not frames:
        raise UserError("no run folders given")
    return pd.concat(frames, ignore_index=True)


def profiles(run: str | Path) -> pd.DataFrame:
    """One row per profiled case of the run: its profile_* metrics (time per category, overhead,
    energy); empty when nothing was profiled."""
    return profile_store.profiles(run)


def operators(run: str | Path) -> pd.DataFrame:
    """The run's per-operator tables, one row per operator and input shapes per profiled case."""
    return profile_store.operators(run)
