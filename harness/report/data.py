"""What a report is drawn from: the runs' records, suites, environments and calibrations,
grouped into one Section per (workload, family)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness import results
from harness.errors import UserError


@dataclass
class RunInfo:
    name: str
    path: Path
    suite: dict[str, Any]
    env: dict[str, Any]
    calibration: dict[str, Any] | None


@dataclass
class Section:
    """The cases of one workload and family, across every run."""

    workload: str
    family: str
    frame: pd.DataFrame
    x: str  # the swept axis on the horizontal axis
    facets: list[str]  # the other swept axes with more than one value
    axes: list[str]  # every swept axis
    baseline: str | None
    baseline_note: str = ""
    runs: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.workload} / {self.family}"

    def combos(self, with_x: bool = False) -> list[tuple]:
        """Distinct values of the facet axes (and x), in sorted order."""
        columns = self.facets + ([self.x] if with_x else [])
        if not columns:
            return [()]
        values = self.frame[columns].drop_duplicates().itertuples(index=False, name=None)
        return sorted(values, key=lambda combo: tuple(_sort_key(v) for v in combo))

    def rows(self, combo: tuple, with_x: bool = False) -> pd.DataFrame:
        columns = self.facets + ([self.x] if with_x else [])
        mask = pd.Series(True, index=self.frame.index)
        for column, value in zip(columns, combo):
            mask &= self.frame[column].isna() if _missing(value) else self.frame[column] == value
        return self.frame[mask]

    @property
    def multi_run(self) -> bool:
        return len(self.runs) > 1


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sort_key(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) and not _missing(value) else (1, 0.0, str(value))


def load_runs(paths: list[Path]) -> tuple[pd.DataFrame, list[RunInfo]]:
    infos = []
    for path in paths:
        if not (Path(path) / results.RECORDS).exists() and not (Path(path) / results.TABLE).exists():
            raise UserError(f"{path}: not a run folder (no {results.RECORDS}); give results/<run>")
        infos.append(RunInfo(name=Path(path).name, path=Path(path), suite=_read_yaml(Path(path) / "suite.yaml"),
                             env=results.env(path), calibration=None))
    if len({i.name for i in infos}) < len(infos):
        raise UserError("the same run folder name is given twice; each run must have its own folder")
    for info in infos:
        info.calibration = calibration_for(info)
    frame = results.load([i.path for i in infos])
    frame["axes"] = frame["axes"].map(lambda a: [str(v) for v in a] if a is not None else [])
    return frame, infos


def calibration_for(run: RunInfo) -> dict[str, Any] | None:
    """results/calibration-<env_id>.json beside the run folder, if it exists and parses."""
    env_id = run.env.get("env_id")
    return _read_json(run.path.parent / f"calibration-{env_id}.json") if env_id else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or unreadable: the report says less, it does not fail
        return None
    return value if isinstance(value, dict) else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def sections(frame: pd.DataFrame, runs: list[RunInfo], baseline: str | None) -> list[Section]:
    """One Section per (workload, family), in order of first appearance."""
    out = []
    for (workload, family), rows in frame.groupby(["workload", "family"], sort=False):
        rows = rows.reset_index(drop=True)
        axes = list(dict.fromkeys(a for listed in rows["axes"] for a in listed if a in rows))
        x = "seq_len" if "seq_len" in axes else (axes[0] if axes else None)
        if x is None:  # nothing swept: one point per impl
            rows = rows.assign(point="all")
            x = "point"
        facets = [a for a in axes if a != x and rows[a].nunique(dropna=False) > 1]
        chosen, note = _baseline(rows, runs, baseline)
        out.append(Section(workload, family, rows, x, facets, axes, chosen, note,
                           runs=list(dict.fromkeys(rows["run"]))))
    return out


def _baseline(rows: pd.DataFrame, runs: list[RunInfo], requested: str | None) -> tuple[str | None, str]:
    labels = list(dict.fromkeys(rows["label"]))
    if requested:
        if requested in labels:
            return requested, "chosen with --baseline"
        return None, f"--baseline {requested} is not an impl here (impls: {', '.join(labels)})"
    for run in runs:
        if run.suite.get("baseline") in labels and run.name in set(rows["run"]):
            return run.suite["baseline"], f"the baseline of suite {run.suite.get('name', run.name)}"
    return (labels[0], "no suite baseline: the first impl listed") if labels else (None, "no impls")


def check_request(frame: pd.DataFrame, metric: str, baseline: str | None) -> None:
    """A --metric or --baseline that names nothing in the runs is the user's mistake."""
    if metric not in frame or frame[metric].notna().sum() == 0:
        numeric = [c for c in frame.columns if c.endswith(("_ms", "_bytes", "_per_s")) and frame[c].notna().any()]
        raise UserError(f"--metric {metric}: no case has it; valid: {', '.join(sorted(numeric))}")
    if baseline and baseline not in set(frame["label"]):
        raise UserError(f"--baseline {baseline}: not an impl in these runs; valid: "
                        f"{', '.join(sorted(set(frame['label'])))}")
