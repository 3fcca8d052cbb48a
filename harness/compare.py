"""Compare two runs case by case: NEW / BASE ratios with a verdict each.

A verdict needs two kinds of evidence to agree, because either alone is
fooled by a loaded machine: the Mann-Whitney U test on the raw samples
(alpha 0.01) and non-overlapping 95% confidence intervals of the medians.

    same     the ratio is within SAME_BAND of 1, or neither test separates the
             runs although both had enough samples
    faster / slower   both tests separate them (direction from the ratio)
    unclear  too few samples, or the two tests disagree

A metric without raw samples (memory, error) is deterministic per case: its
verdict comes from the ratio alone. Cases that did not end ok in either run
are listed and never compared.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from harness import results
from harness.errors import UserError
from harness.measure.stats import median_ci

ALPHA = 0.01
SAME_BAND = 0.02  # |ratio - 1| within 2% is "same" whatever the tests say
MIN_SAMPLES = 5  # below this the U test cannot reach alpha 0.01 (two-sided, 5 vs 5 gives p=0.008)
# "Not significant" means "same" only with this many samples a side; with fewer it
# more often means "could not tell" (a 5-sample run on a loaded machine).
SAME_MIN_SAMPLES = 10
SAMPLED_METRICS = {"median_ms"}  # metrics whose per-call samples are samples_ms


@dataclass
class Pair:
    """One case seen in both runs."""

    key: str
    label: str
    axes: dict[str, Any]
    base: float | None = None
    new: float | None = None
    ratio: float | None = None  # new / base: above 1 is slower for times
    verdict: str = "unclear"
    p_value: float | None = None
    why: str = ""


@dataclass
class Comparison:
    metric: str
    compared: list[Pair] = field(default_factory=list)
    not_ok: list[dict[str, Any]] = field(default_factory=list)  # label, axes, base/new status and reason
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)

    def regressions(self, threshold: float) -> list[Pair]:
        """Cases slower with a clear verdict by more than `threshold` (0.1 = 10%)."""
        return [p for p in self.compared
                if p.verdict == "slower" and p.ratio is not None and p.ratio > 1 + threshold]


def parse_threshold(text: str) -> float:
    """'10%' or '10' -> 0.10. Anything else is a UserError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text or "")
    if not match:
        raise UserError(f"--fail-above {text!r}: expected a percentage like 10% or 2.5%")
    return float(match.group(1)) / 100.0


def compare_runs(base_dir: str | Path, new_dir: str | Path, metric: str = "median_ms") -> Comparison:
    base, new = _records(base_dir, "BASE"), _records(new_dir, "NEW")
    return compare_records(base, new, metric)


def _records(run_dir: str | Path, role: str) -> list[dict[str, Any]]:
    if not Path(run_dir).is_dir():
        raise UserError(f"{role} {run_dir}: no such run folder")
    return results.read_records(run_dir)


def compare_records(base: list[dict[str, Any]], new: list[dict[str, Any]],
                    metric: str = "median_ms") -> Comparison:
    """Join on case_id, then on label + params for cases whose id changed."""
    matched = _join(base, new)
    if not matched:
        raise UserError("the two runs have no case in common (matched by case_id, then by label and params)")
    if not any(metric in r.get("metrics", {}) for pair in matched for r in pair):
        raise UserError(f"--metric {metric}: no case in either run has it; e.g. median_ms, peak_extra_bytes")
    result = Comparison(metric=metric)
    for b, n in matched:
        if b["status"] != "ok" or n["status"] != "ok":
            result.not_ok.append({"label": b["label"], "axes": _axes(b),
                                  "base": b["status"], "base_reason": b.get("reason", ""),
                                  "new": n["status"], "new_reason": n.get("reason", "")})
            continue
        result.compared.append(judge(b, n, metric))
    matched_base = {id(b) for b, _ in matched}
    matched_new = {id(n) for _, n in matched}
    result.only_base = [_describe(r) for r in base if id(r) not in matched_base]
    result.only_new = [_describe(r) for r in new if id(r) not in matched_new]
    return result


def _join(base: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    by_id = {r["case_id"]: r for r in new}
    pairs, used = [], set()
    for r in base:
        other = by_id.get(r["case_id"])
        if other is not None:
            pairs.append((r, other))
            used.add(id(other))
    by_content = {_content_key(r): r for r in new if id(r) not in used}
    paired = {id(b) for b, _ in pairs}
    for r in base:
        if id(r) not in paired and _content_key(r) in by_content:
            pairs.append((r, by_content.pop(_content_key(r))))
    return pairs


def _content_key(record: dict[str, Any]) -> str:
    return json.dumps([record.get("label"), record.get("params", {})], sort_keys=True, default=str)


def _axes(record: dict[str, Any]) -> dict[str, Any]:
    params = record.get("params", {})
    return {a: params.get(a) for a in record.get("axes", [])}


def _describe(record: dict[str, Any]) -> str:
    axes = ", ".join(f"{k}={v}" for k, v in _axes(record).items())
    return f"{record.get('label')} [{axes}]"


def judge(base: dict[str, Any], new: dict[str, Any], metric: str) -> Pair:
    """The verdict for one case measured ok in both runs."""
    pair = Pair(key=base["case_id"], label=base["label"], axes=_axes(base))
    pair.base, pair.new = base["metrics"].get(metric), new["metrics"].get(metric)
    if pair.base is None or pair.new is None or not pair.base > 0:
        pair.why = f"{metric} missing or zero"
        return pair
    pair.ratio = pair.new / pair.base
    if metric not in SAMPLED_METRICS:
        pair.verdict = _by_ratio(pair.ratio)
        pair.why = "no samples: ratio only"
        return pair
    pair.verdict, pair.p_value, pair.why = verdict_from_samples(base.get("samples_ms") or [],
                                                                new.get("samples_ms") or [], pair.ratio)
    return pair


def _by_ratio(ratio: float) -> str:
    if abs(ratio - 1) <= SAME_BAND:
        return "same"
    return "slower" if ratio > 1 else "faster"


def verdict_from_samples(base: list[float], new: list[float], ratio: float) -> tuple[str, float | None, str]:
    """(verdict, p-value, why) from the raw per-call times of both runs (ms)."""
    fewest = min(len(base), len(new))
    if fewest < MIN_SAMPLES:
        return "unclear", None, f"too few samples ({len(base)}, {len(new)})"
    p_value = float(mannwhitneyu(base, new, alternative="two-sided").pvalue)
    if abs(ratio - 1) <= SAME_BAND:
        return "same", p_value, f"within {SAME_BAND:.0%}"
    significant = p_value < ALPHA
    separate = _cis_apart(base, new)
    if significant and separate:
        return ("slower" if ratio > 1 else "faster"), p_value, "U test and CIs agree"
    if not significant and not separate:
        if fewest >= SAME_MIN_SAMPLES:
            return "same", p_value, "not significant"
        return "unclear", p_value, f"not significant, {fewest} samples"
    return "unclear", p_value, "U test and CIs disagree"


def _cis_apart(a: list[float], b: list[float]) -> bool:
    low_a, high_a = median_ci(np.sort(np.asarray(a, dtype=float)))
    low_b, high_b = median_ci(np.sort(np.asarray(b, dtype=float)))
    return high_a < low_b or high_b < low_a


def geometric_mean_ratio(pairs: list[Pair]) -> float | None:
    ratios = [p.ratio for p in pairs if p.ratio and p.ratio > 0]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
