"""Which categories of a case's time moved between two profiled runs.

A profile is one pass, with no samples to judge, so this describes rather than judges: a
category moved when its share of the profiled call changed by MOVE_SHARE or more. Shares,
not milliseconds: the profiler's overhead and the machine's load scale every category of a
pass together, but they do not move time from softmax into matmul."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.profile import store
from harness.profile.categories import CATEGORIES

MOVE_SHARE = 0.05  # five percentage points of the profiled call


@dataclass(frozen=True)
class Move:
    case: str
    category: str
    base_share: float
    new_share: float
    base_ms: float
    new_ms: float

    def __str__(self) -> str:
        return (f"{self.case}: {self.category} {self.base_share:.0%} -> {self.new_share:.0%} of the call "
                f"({self.base_ms:.3g} -> {self.new_ms:.3g} ms)")


def moves(base_dir: str | Path, new_dir: str | Path) -> list[Move] | None:
    """The categories that moved in the cases both runs profiled (None: a run has no profiles)."""
    base, new = store.profiles(base_dir), store.profiles(new_dir)
    if base.empty or new.empty:
        return None
    joined = base.merge(new, on="case_id", suffixes=("_base", "_new"))
    found = []
    for _, row in joined.iterrows():
        if row["error_base"] or row["error_new"]:
            continue
        base_ms, new_ms = _times(row, "_base"), _times(row, "_new")
        base_total, new_total = sum(base_ms.values()), sum(new_ms.values())
        if base_total <= 0 or new_total <= 0:
            continue
        for category in CATEGORIES:
            before, after = base_ms[category] / base_total, new_ms[category] / new_total
            if abs(after - before) >= MOVE_SHARE:
                found.append(Move(_case(row), category, before, after, base_ms[category], new_ms[category]))
    return found


def lines(base_dir: str | Path, new_dir: str | Path) -> list[str]:
    """compare's lines about where the time went; [] when either run has no profiles."""
    found = moves(base_dir, new_dir)
    if found is None:
        return []
    head = (f"where the time goes (profiled passes; a category moved when its share changed by "
            f"{MOVE_SHARE:.0%} or more; described, not judged): ")
    return [head + (f"{len(found)} move(s)" if found else "nothing moved")] + [f"  {move}" for move in found]


def _times(row: pd.Series, suffix: str) -> dict[str, float]:
    values = {c: row.get(f"profile_{c}_ms{suffix}") for c in CATEGORIES}
    return {c: float(value) if pd.notna(value) else 0.0 for c, value in values.items()}


def _case(row: pd.Series) -> str:
    return f"{row['label_new']} ({row['case_id']})"
