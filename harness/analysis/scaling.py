"""Empirical scaling exponents: the slope of log(y) against log(x).

A time that grows like N^2 fits an exponent near 2; memory that stays flat
fits near 0. Only cases that ended `ok` with positive x and y take part,
because a wrong or failed case says nothing about how the impl scales.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["exponent", "r2", "n_points", "x_min", "x_max"]


def fit_exponent(frame: pd.DataFrame, x: str = "seq_len", y: str = "median_ms",
                 by: str | list[str] = "label") -> pd.DataFrame:
    """Least-squares fit of log(y) = exponent * log(x) + c for each group of `by`.

    Returns one row per group: the `by` columns, `exponent` (dimensionless),
    `r2` (coefficient of determination of the log-log fit; NaN with fewer than
    three points, where a line fits trivially), `n_points`, `x_min`, `x_max`.
    Groups with fewer than two distinct x values are left out.
    """
    keys = [by] if isinstance(by, str) else list(by)
    if frame.empty or x not in frame or y not in frame:
        return pd.DataFrame(columns=keys + COLUMNS)
    usable = frame[_usable(frame, x, y)]
    rows = []
    for key, group in usable.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        fit = _fit(np.log(group[x].astype(float).to_numpy()), np.log(group[y].astype(float).to_numpy()))
        if fit is not None:
            rows.append(dict(zip(keys, key)) | fit | {"x_min": float(group[x].min()),
                                                      "x_max": float(group[x].max())})
    return pd.DataFrame(rows, columns=keys + COLUMNS)


def _usable(frame: pd.DataFrame, x: str, y: str) -> pd.Series:
    ok = frame["status"] == "ok" if "status" in frame else pd.Series(True, index=frame.index)
    xs = pd.to_numeric(frame[x], errors="coerce")
    ys = pd.to_numeric(frame[y], errors="coerce")
    return ok & (xs > 0) & (ys > 0)


def _fit(log_x: np.ndarray, log_y: np.ndarray) -> dict[str, float] | None:
    if len(np.unique(log_x)) < 2:
        return None
    slope, intercept = np.polyfit(log_x, log_y, 1)
    residual = log_y - (slope * log_x + intercept)
    spread = float(((log_y - log_y.mean()) ** 2).sum())
    if len(log_x) < 3:
        r2 = float("nan")
    else:
        r2 = 1.0 - float((residual ** 2).sum()) / spread if spread > 0 else 1.0
    return {"exponent": float(slope), "r2": r2, "n_points": int(len(log_x))}
