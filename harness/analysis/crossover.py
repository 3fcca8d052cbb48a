"""Crossover points: the size where an impl starts beating the baseline.

Between two sweep points where the speedup crosses 1, the crossing is
interpolated linearly in log(size) against log(speedup), the scale on which
time-vs-size curves are close to straight.
"""
from __future__ import annotations

import math

import pandas as pd

COLUMNS = ["crossover", "faster", "x_min", "x_max"]


def crossovers(speedup_frame: pd.DataFrame, x: str, by: list[str]) -> pd.DataFrame:
    """For each group of `by` (e.g. run, label, other axes): where along `x` the speedup
    crosses 1 (`crossover`, NaN when it never does) and on which side the impl is faster
    (`faster`: 'above', 'below', 'everywhere', 'nowhere', or 'mixed' for several crossings)."""
    usable = speedup_frame[speedup_frame["speedup"].notna() & (pd.to_numeric(speedup_frame[x]) > 0)]
    rows = []
    for key, group in usable.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        points = sorted(zip(group[x].astype(float), group["speedup"].astype(float)))
        if len(points) < 2:
            continue
        rows.append(dict(zip(by, key)) | _crossing(points))
    return pd.DataFrame(rows, columns=list(by) + COLUMNS)


def _crossing(points: list[tuple[float, float]]) -> dict[str, object]:
    """points: (x, speedup) sorted by x, speedups > 0."""
    span = {"x_min": points[0][0], "x_max": points[-1][0]}
    logs = [(math.log(x), math.log(s)) for x, s in points]
    found = []
    for (x0, s0), (x1, s1) in zip(logs, logs[1:]):
        if s0 == 0 or s0 * s1 < 0:
            # linear in log-log: the speedup is 1 (log 0) at this fraction of the way from x0 to x1
            t = 0.0 if s0 == 0 else s0 / (s0 - s1)
            found.append((math.exp(x0 + t * (x1 - x0)), "above" if s1 > 0 else "below"))
    if len(found) == 1:
        return {"crossover": found[0][0], "faster": found[0][1]} | span
    if found:
        return {"crossover": found[0][0], "faster": "mixed"} | span
    faster = "everywhere" if all(s > 0 for _, s in logs) else "nowhere"
    return {"crossover": math.nan, "faster": faster} | span
