"""Speedups against a baseline impl, point by point, with the cases that must not count.

A speedup is only a number when both the impl and the baseline ended `ok`
at that point: a `wrong` result is fast for no good reason, so it gets NaN
and a note, never a ratio.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.metrics import higher_is_better

COLUMNS = ["label", "speedup", "status", "noisy", "note"]


def point_keys(frame: pd.DataFrame, axes: list[str], baseline: str) -> list[str]:
    """Columns that identify a point apart from the impl: the run and the swept axes
    that the baseline has (an impl's own swept parameter, like a window, is not one)."""
    base = frame[frame["label"] == baseline]
    return ["run"] + [a for a in axes if a in frame and base[a].notna().any()]


def speedups(frame: pd.DataFrame, baseline: str, axes: list[str], metric: str = "median_ms") -> pd.DataFrame:
    """One row per non-baseline case: key columns, label, speedup (above 1: better than the
    baseline; baseline / metric for times, metric / baseline for higher-is-better metrics
    like TFLOP/s; NaN unless both ended ok), the worse status of the two, whether either
    was noisy, and a note for the reader."""
    keys = point_keys(frame, axes, baseline)
    columns = keys + [metric, "status", "reason"] + (["noisy"] if "noisy" in frame else [])
    base = frame.loc[frame["label"] == baseline, columns]
    others = frame.loc[frame["label"] != baseline, columns + ["label"] + [a for a in axes if a not in keys]]
    if base.empty or others.empty:
        return pd.DataFrame(columns=keys + COLUMNS)
    merged = others.merge(base, on=keys, how="left", suffixes=("", "_base"))
    merged["status"] = [_status(s, b) for s, b in zip(merged["status"], merged["status_base"])]
    both_ok = merged["status"] == "ok"
    ratio = merged[f"{metric}_base"].astype(float) / merged[metric].astype(float)
    if higher_is_better(metric):
        ratio = 1.0 / ratio
    merged["speedup"] = np.where(both_ok & (ratio > 0) & np.isfinite(ratio), ratio, np.nan)
    noisy = merged.get("noisy", False)
    merged["noisy"] = _flag(noisy) | _flag(merged.get("noisy_base", False))
    merged["note"] = [_note(s, n) for s, n in zip(merged["status"], merged["noisy"])]
    return merged[keys + [a for a in axes if a not in keys] + COLUMNS]


def _flag(values) -> pd.Series | bool:
    if isinstance(values, pd.Series):
        return values.fillna(False).astype(bool)
    return bool(values)


def _status(own: str, base: object) -> str:
    """'wrong' wins over any other failure: it is the one a reader must not miss."""
    if not isinstance(base, str):
        return "no baseline"
    for status in ("wrong", own, base):
        if status != "ok" and status in (own, base):
            return status
    return "ok"


def _note(status: str, noisy: bool) -> str:
    if status == "wrong":
        return "wrong result: not a speedup"
    if status != "ok":
        return status
    return "noisy measurement" if noisy else ""
