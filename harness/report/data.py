"""What a report is drawn from: the runs' records, suites, environments and calibrations,
grouped into one Section per (workload, family)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness import metrics, results
from harness.measure import ceilings as calibrations
from harness.errors import UserError


@dataclass
class RunInfo:
    name: str
    path: Path
    suite: dict[str, Any]
    env: dict[str, Any]
    calibration: dict[str, Any] | None
    metrics: list[str] = field(default_factory=list)  # the records' metric names


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
    run_tags: dict[str, str] = field(default_factory=dict)  # run name -> R1, R2, ... (run_tags())

    @property
    def title(self) -> str:
        return f"{self.workload} / {self.family}"

    def combos(self, with_x: bool = False) -> list[tuple]:
        """Distinct values of the facet axes (and x), in sorted order."""
        columns = self.facets + ([self.x] if with_x else [])
        if not columns:
            return [()]
        values = self.frame[columns].drop_duplicates().itertuples(index=False, name=None)
        return sorted(values, key=lambda combo: tuple(sort_key(v) for v in combo))

    def rows(self, combo: tuple, with_x: bool = False) -> pd.DataFrame:
        columns = self.facets + ([self.x] if with_x else [])
        mask = pd.Series(True, index=self.frame.index)
        for column, value in zip(columns, combo):
            mask &= self.frame[column].isna() if _missing(value) else self.frame[column] == value
        return self.frame[mask]

    @property
    def multi_run(self) -> bool:
        return len(self.runs) > 1

    def tag(self, run: str) -> str | None:
        """The run's short name in legends, where several runs share this section's charts."""
        return self.run_tags.get(run, run) if self.multi_run else None


def run_tags(runs: list[RunInfo]) -> dict[str, str]:
    """R1, R2, ... in the order the runs were given: legends stay short on a laptop screen,
    and the Runs table says which is which."""
    return {run.name: f"R{i}" for i, run in enumerate(runs, 1)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sort_key(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, (int, float)) and not _missing(value) else (1, 0.0, str(value))


def load_runs(paths: list[Path]) -> tuple[pd.DataFrame, list[RunInfo]]:
    """The records of every run as one frame (its `run` column: each run's display name)
    and what the report knows about each run. Runs from two machines may share a folder
    name: they are told apart by hostname or by the folders above them."""
    infos = []
    for path in paths:
        if not (Path(path) / results.RECORDS).exists() and not (Path(path) / results.TABLE).exists():
            raise UserError(f"{path}: not a run folder (no {results.RECORDS}); give results/<run>")
        infos.append(RunInfo(name=Path(path).name, path=Path(path), suite=_read_yaml(Path(path) / "suite.yaml"),
                             env=results.env(path), calibration=None, metrics=_metric_names(Path(path))))
    _name_apart(infos)
    frames = []
    for info in infos:
        info.calibration = calibration_for(info)
        frames.append(with_fractions(results.load(info.path).assign(run=info.name), info.calibration))
    frame = pd.concat(frames, ignore_index=True)
    frame["axes"] = frame["axes"].map(lambda a: [str(v) for v in a] if a is not None else [])
    return frame, infos


def _name_apart(infos: list[RunInfo]) -> None:
    """Give runs that share a folder name distinct names; the very same folder twice is a mistake."""
    seen: dict[Path, Path] = {}
    for info in infos:
        real = info.path.resolve()
        if real in seen:
            also = f" (also as {seen[real]})" if seen[real] != info.path else ""
            raise UserError(f"{info.path}: the same run folder is given twice{also}")
        seen[real] = info.path
    for name in {i.name for i in infos}:
        clash = [i for i in infos if i.name == name]
        if len(clash) < 2:
            continue
        hosts = [i.env.get("hostname") for i in clash]
        if all(hosts) and len(set(hosts)) == len(hosts):
            for info, host in zip(clash, hosts):
                info.name = f"{name} @ {host}"
            continue
        parts = [info.path.resolve().parts for info in clash]
        depth = next(d for d in range(2, max(map(len, parts)) + 1) if len({p[-d:] for p in parts}) == len(parts))
        for info, part in zip(clash, parts):
            info.name = "/".join(part[-depth:])


def _metric_names(path: Path) -> list[str]:
    """The keys of the records' `metrics` (the rest of a record's columns are params and identity)."""
    if not (path / results.RECORDS).exists():
        return []
    return list(dict.fromkeys(k for r in results.read_records(path) for k in r.get("metrics", {})))


def calibration_for(run: RunInfo) -> dict[str, Any] | None:
    """calibration-<env_id>.json where `harness run` looks for it (beside the run folder, then
    calibrations.default_folder()), if it exists and parses."""
    env_id = run.env.get("env_id")
    if not env_id:
        return None
    for folder in calibrations.search_folders(run.path.parent):
        found = _read_json(calibrations.path_for(env_id, folder))
        if found:
            return found
    return None


def ceiling_values(cal: dict[str, Any], precisions: list[str]) -> tuple[dict[str, float], float | None]:
    """({precision: peak TFLOP/s}, copy GB/s) from a calibration file, in either layout:
    `harness calibrate`'s {"ceilings": {"flops": {precision: FLOP/s}, "bytes_per_s": B/s}}
    or the short {"matmul_tflops": {precision: TFLOP/s} or a number, "copy_gbps": GB/s}."""
    if isinstance(cal.get("ceilings"), dict):
        flops, per_s = cal["ceilings"].get("flops") or {}, cal["ceilings"].get("bytes_per_s")
        peaks = {p: v / 1e12 for p, v in flops.items() if isinstance(v, (int, float))}
        return peaks, per_s / 1e9 if isinstance(per_s, (int, float)) else None
    peaks = cal.get("matmul_tflops")
    peaks = peaks if isinstance(peaks, dict) else ({p: peaks for p in precisions} if peaks else {})
    gbps = cal.get("copy_gbps")
    return peaks, gbps if isinstance(gbps, (int, float)) else None


def with_fractions(frame: pd.DataFrame, calibration: dict[str, Any] | None) -> pd.DataFrame:
    """Percent of this device's measured ceilings, where the run has a calibration:
    pct_peak_flops and pct_peak_bandwidth where the records lack them (runs made before
    `harness calibrate`), and pct_roofline, the TFLOP/s reached over the roofline
    min(peak FLOP/s, bandwidth x FLOP per byte) at the case's own intensity."""
    if not calibration or "tflops" not in frame or "precision" not in frame:
        return frame
    peaks, gbps = ceiling_values(calibration, sorted(frame["precision"].dropna().unique()))
    peak = frame["precision"].map(peaks).astype(float)
    frame = frame.copy()
    computed = calibrations.fractions(frame["tflops"], frame.get("gbps"), peak * 1e12 if peaks else None,
                                   gbps * 1e9 if gbps else None)
    for column, values in computed.items():
        frame[column] = _keep(frame.get(column), values)
    if peaks and {"flops", "bytes_moved"} <= set(frame.columns):
        intensity = frame["flops"] / frame["bytes_moved"]  # FLOP per byte
        roof = np.minimum(peak, gbps * intensity / 1e3) if gbps else peak  # TFLOP/s; NaN: precision not calibrated
        frame["pct_roofline"] = 100 * frame["tflops"] / roof
    return frame


def _keep(recorded: pd.Series | None, computed: pd.Series) -> pd.Series:
    """The record's own value where it has one (measured against the ceilings it ran with)."""
    return computed if recorded is None else recorded.fillna(computed)


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
        x = size_axis(rows, axes)
        if x is None:  # nothing swept: one point per impl
            rows = rows.assign(point="all")
            x = "point"
        facets = [a for a in axes if a != x and rows[a].nunique(dropna=False) > 1]
        chosen, note = _baseline(rows, runs, baseline)
        out.append(Section(workload, family, rows, x, facets, axes, chosen, note,
                           runs=list(dict.fromkeys(rows["run"])), run_tags=run_tags(runs)))
    return out


# The axes that say how big a case is, most telling first: what a reader puts on the x axis
SIZE_AXES = ("seq_len", "prompt_len", "src_len", "new_tokens", "batch", "rate", "target_params", "k",
             "n_layers", "d_model", "heads", "head_dim")


def size_axis(rows: pd.DataFrame, axes: list[str]) -> str | None:
    """The x axis: the first of SIZE_AXES swept over several values here, else the first numeric
    swept axis with several values, else the first swept axis (None: nothing is swept)."""
    varied = [a for a in axes if rows[a].nunique(dropna=True) > 1]
    numeric = [a for a in varied if pd.api.types.is_numeric_dtype(rows[a]) and not pd.api.types.is_bool_dtype(rows[a])]
    by_meaning = [a for a in SIZE_AXES if a in numeric]
    return next(iter(by_meaning + numeric + varied + axes), None)


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


# pct_roofline exists only in reports: with_fractions computes it from a calibration file
REPORT_METRICS = ("pct_peak_flops", "pct_peak_bandwidth", "pct_roofline")


def metric_names(frame: pd.DataFrame, runs: list[RunInfo]) -> list[str]:
    """Metrics a report can draw: the records' metrics with one number per case (not the
    raw samples, not flags), and the fractions of peak computed from calibrations."""
    named = [m for run in runs for m in run.metrics] + list(REPORT_METRICS)
    if not any(run.metrics for run in runs):  # a table without its records.jsonl: guess from names
        named += [c for c in frame.columns if c.endswith(("_ms", "_bytes", "_per_s", "_err"))]
    return sorted(m for m in set(named) if m in frame and _scalar_numbers(frame[m]))


def _scalar_numbers(column: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
            and column.notna().any())


# What a report draws when no --metric is given, in order of preference
DEFAULT_METRICS = ("median_ms", "val_loss", "final_loss", "accuracy", "bleu", "train_s")


def default_metric(frame: pd.DataFrame, runs: list[RunInfo]) -> str:
    valid = metric_names(frame, runs)
    return next((m for m in DEFAULT_METRICS if m in valid), valid[0] if valid else "median_ms")


def check_request(frame: pd.DataFrame, runs: list[RunInfo], metric: str, baseline: str | None) -> None:
    """A --metric or --baseline that names nothing in the runs is the user's mistake."""
    valid = metric_names(frame, runs)
    try:
        metrics.get(metric)
    except metrics.UnknownMetric as unknown:
        raise UserError(f"--metric {metric}: {unknown}; valid: {', '.join(valid)}") from None
    if metric not in valid:
        raise UserError(f"--metric {metric}: not a metric with one number per case in these runs; "
                        f"valid: {', '.join(valid)}")
    check_baseline(frame, baseline)


def check_baseline(frame: pd.DataFrame, baseline: str | None) -> None:
    if baseline and baseline not in set(frame["label"]):
        raise UserError(f"--baseline {baseline}: not an impl in these runs; valid: "
                        f"{', '.join(sorted(set(frame['label'])))}")
