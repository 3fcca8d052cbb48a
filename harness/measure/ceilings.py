"""The ceilings `harness calibrate` stored for an environment, found again, and a case's rates
as fractions of them. No torch here: the runner looks the ceilings up before any case runs.

calibration-<env_id>.json lives under `default_folder()` (results/ at the repository root, or
$SEQBENCH_CALIBRATION); `find_ceilings` also looks in a run's own output folder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

MISSING = ("no calibration for this machine (env {env_id}; looked in {folders}): the pct_peak_flops and "
           "pct_peak_bandwidth columns are left out; run `python -m harness calibrate` once to add them")


def default_folder() -> Path:
    """Where calibrations live: $SEQBENCH_CALIBRATION, else results/ at the repository root
    (not the working directory, so every run on this machine finds them)."""
    override = os.environ.get("SEQBENCH_CALIBRATION")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "results"


def path_for(env_id: str, folder: Path | None = None) -> Path:
    return Path(folder or default_folder()) / f"calibration-{env_id}.json"


def load_ceilings(env_id: str, folder: Path | None = None) -> dict[str, Any] | None:
    """The ceilings measured for `env_id` in `folder` (default `default_folder()`), or None."""
    path = path_for(env_id, folder)
    if not path.exists():
        return None
    return json.loads(path.read_text())["ceilings"]


def search_folders(*extra: Path) -> list[Path]:
    """`extra` (e.g. a run's output folder) then `default_folder()`, without repeats."""
    folders: list[Path] = []
    for folder in (*extra, default_folder()):
        if folder.resolve() not in [f.resolve() for f in folders]:
            folders.append(folder)
    return folders


def find_ceilings(env_id: str, folders: Iterable[Path]) -> dict[str, Any] | None:
    """The first calibration of `env_id` found in `folders`, or None."""
    for folder in folders:
        ceilings = load_ceilings(env_id, folder)
        if ceilings is not None:
            return ceilings
    return None


def fractions(tflops: Any, gbps: Any, peak_flops: Any, bytes_per_s: float | None) -> dict[str, Any]:
    """pct_peak_flops and pct_peak_bandwidth (percent of the ceilings: FLOP/s, bytes/s) of a
    case's TFLOP/s and GB/s, where both sides are known. Numbers or pandas columns alike: the
    worker computes a record's, the report those of runs recorded before a calibration."""
    out = {}
    if tflops is not None and peak_flops is not None:
        out["pct_peak_flops"] = 100.0 * tflops * 1e12 / peak_flops
    if gbps is not None and bytes_per_s:
        out["pct_peak_bandwidth"] = 100.0 * gbps * 1e9 / bytes_per_s
    return out
