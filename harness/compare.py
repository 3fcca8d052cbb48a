"""Compare two runs case by case: NEW / BASE ratios with a verdict each, per metric.

A verdict on a time needs two kinds of evidence to agree, because either alone
is fooled by a loaded machine: the Mann-Whitney U test on the raw samples
(alpha 0.01) and non-overlapping 95% confidence intervals of the medians.

    same     the ratio is within SAME_BAND of 1, or neither test separates the
             runs although both had enough samples
    faster / slower   both tests separate them (direction from the metric:
             lower is better for times, higher for rates like TFLOP/s), and
             neither run flagged the case `noisy` (IQR/median above noisy_above)
    unclear  too few samples, the two tests disagree, or they agree on timings
             that cannot be held against each other: samples the harness flagged
             noisy, or timed while other processes ran on the CPU
             (measure/contention.py). On a 2-core machine shared with other jobs
             the same code read 0.06 ms in one run and 50 ms in the next, and a
             one-thread op with tight samples 1.1-1.8x apart; a gate must not
             fail on them

median_ms is judged from samples_ms, and so are the rates the worker derives
from it (TFLOP/s, GB/s, tokens/s: work / time, the samples on a reciprocal
scale). A metric with its own per-call samples (metric_samples: a generation's
time to first token, inter-token latency percentiles, decode-only tokens/s, one
sample per timed call) is judged from those, the same way. Other times have no raw samples, so their noise is unknown: `unclear`,
with the ratio shown. Peak memory measured on the CPU is judged against its
measured run-to-run noise (MEMORY_FLOOR_BYTES + MEMORY_BAND). Deterministic
metrics (allocator memory on a GPU, quality, counts) are judged by the ratio
alone: `same` within SAME_BAND, else `better` / `worse`.

Cases that did not end ok in one of the runs are never compared; a case that
was ok in BASE and broke in NEW (wrong, error, oom, timeout, or absent) is a
failure of the gate, one newly `skipped` (unavailable there) is not.
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

from harness import metrics, results
from harness.metrics import cost_ratio, higher_is_better, is_speed, judged_by_default, per_median_call
from harness.errors import UserError
from harness.measure.stats import median_ci

ALPHA = 0.01
SAME_BAND = 0.02  # |ratio - 1| within 2% is "same" whatever the tests say
MIN_SAMPLES = 5  # below this the U test cannot reach alpha 0.01 (two-sided, 5 vs 5 gives p=0.008)
# "Not significant" means "same" only with this many samples a side; with fewer it
# more often means "could not tell" (a 5-sample run on a loaded machine).
SAME_MIN_SAMPLES = 10
# Peak memory measured on the CPU (the resident high-water mark of one call, median of the
# memory passes) moves between runs of unchanged code by what the kernel's resident-set
# counters and the allocator's small blocks add. Six fresh runs of 42 attention cases
# (scripts/measure_memory_noise.py: fwd and fwd_bwd, N=64-2048) spread by at most 1.6 MiB on
# cases under 10 MiB and 5.1% above; it is `same` while |NEW - BASE| <= floor + band x the
# smaller, each about twice the widest spread seen.
MEMORY_FLOOR_BYTES = 3 * 2**20
MEMORY_BAND = 0.05
CPU_MEASURED_MEMORY = {"peak_extra_bytes"}
BAD = {"slower", "worse"}
BROKEN = {"wrong", "error", "oom", "timeout", "absent"}  # "absent": no record of the case in that run


@dataclass
class Pair:
    """One metric of one case seen ok in both runs."""

    key: str
    label: str
    axes: dict[str, Any]
    metric: str = "median_ms"
    base: float | None = None
    new: float | None = None
    ratio: float | None = None  # new / base
    verdict: str = "unclear"
    p_value: float | None = None
    why: str = ""

    @property
    def cost(self) -> float | None:
        """The ratio turned so that above 1 is worse (1 / ratio for higher-is-better metrics)."""
        return None if self.ratio is None else cost_ratio(self.metric, self.ratio)


@dataclass
class StatusChange:
    """A case not ok in at least one run, or present in only one ('absent' in the other)."""

    label: str
    axes: dict[str, Any]
    base: str
    new: str
    reason: str = ""

    @property
    def broke(self) -> bool:
        """Ok in BASE, broken in NEW: a failure of the gate. Newly skipped is not one: the impl
        could not run there (no GPU, a library missing), which says nothing about its code."""
        return self.base == "ok" and self.new in BROKEN

    @property
    def kind(self) -> str:
        if self.broke:
            return "broke"
        if self.base == "ok":
            return "now skipped"
        if self.base == "absent":
            return "only in new"
        if self.new == "absent":
            return "no longer run"
        return "fixed" if self.new == "ok" else "still not ok"


@dataclass
class Comparison:
    metrics: list[str]
    compared: list[Pair] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    skipped_in_both: int = 0

    def pairs(self, metric: str) -> list[Pair]:
        return [p for p in self.compared if p.metric == metric]

    def regressions(self, threshold: float) -> list[Pair]:
        """Clear slowdowns or regressions beyond `threshold` (0.1 = 10%) in the metric's own
        direction: a time 10% up, or a rate down to 1/1.1 of itself."""
        return [p for p in self.compared if p.verdict in BAD and p.cost is not None and p.cost > 1 + threshold]

    def broken(self) -> list[StatusChange]:
        return [c for c in self.changes if c.broke]


def parse_threshold(text: str) -> float:
    """'10%' or '10' -> 0.10. Anything else is a UserError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text or "")
    if not match:
        raise UserError(f"--fail-above {text!r}: expected a percentage like 10% or 2.5%")
    return float(match.group(1)) / 100.0


def compare_runs(base_dir: str | Path, new_dir: str | Path, metrics: list[str] | None = None) -> Comparison:
    base, new = _records(base_dir, "BASE"), _records(new_dir, "NEW")
    if Path(base_dir).resolve() == Path(new_dir).resolve():
        raise UserError(f"BASE and NEW are the same run folder ({base_dir}); compare two runs, e.g. one "
                        "before and one after a change")
    return compare_records(base, new, metrics)


def _records(run_dir: str | Path, role: str) -> list[dict[str, Any]]:
    if not Path(run_dir).is_dir():
        raise UserError(f"{role} {run_dir}: no such run folder")
    return results.read_records(run_dir)


def compare_records(base: list[dict[str, Any]], new: list[dict[str, Any]],
                    metrics: list[str] | str | None = None) -> Comparison:
    """Join on case_id, then on label + params for cases whose id changed; judge each of
    `metrics` (default: every metric judged_by_default that both runs have) per case."""
    matched = _join(base, new)
    if not matched:
        raise UserError("the two runs have no case in common (matched by case_id, then by label and params)")
    both_ok = [(b, n) for b, n in matched if b["status"] == "ok" and n["status"] == "ok"]
    chosen = choose_metrics(both_ok, [metrics] if isinstance(metrics, str) else metrics)
    result = Comparison(metrics=chosen)
    for b, n in matched:
        if b["status"] == "ok" and n["status"] == "ok":
            measured = _numbers(b).keys() | _numbers(n).keys()
            result.compared += [judge(b, n, metric) for metric in chosen if metric in measured]
        elif b["status"] == n["status"] == "skipped":
            result.skipped_in_both += 1
        else:
            result.changes.append(StatusChange(b["label"], _axes(b), b["status"], n["status"],
                                               n.get("reason") if n["status"] != "ok" else b.get("reason", "")))
    matched_base, matched_new = {id(b) for b, _ in matched}, {id(n) for _, n in matched}
    result.changes += [StatusChange(r["label"], _axes(r), r["status"], "absent", "no record in NEW")
                       for r in base if id(r) not in matched_base]
    result.changes += [StatusChange(r["label"], _axes(r), "absent", r["status"], r.get("reason", ""))
                       for r in new if id(r) not in matched_new]
    return result


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in record.get("metrics", {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def choose_metrics(pairs: list[tuple[dict, dict]], requested: list[str] | None) -> list[str]:
    """The metrics to judge: those requested (each must be a number in some case ok in both
    runs), else every metric judged by default that both runs have, median_ms first. Rates
    derived from median_ms would repeat its verdicts, so they are judged only when named."""
    present = list(dict.fromkeys(m for b, n in pairs for m in _numbers(b) if m in _numbers(n)))
    try:
        metrics.check([*present, *(requested or [])])
    except metrics.UnknownMetric as unknown:
        raise UserError(f"{'--metric ' + unknown.name + ': ' if unknown.name in (requested or []) else ''}"
                        f"{unknown}") from None
    if requested:
        unknown = [m for m in requested if m not in present]
        if unknown:
            raise UserError(f"--metric {','.join(unknown)}: no case ok in both runs has it; valid: "
                            f"{', '.join(sorted(present)) or 'none (no case is ok in both runs)'}")
        return list(dict.fromkeys(requested))
    chosen = [m for m in present if judged_by_default(m)]
    if "median_ms" in chosen:
        chosen = ["median_ms"] + [m for m in chosen if m != "median_ms" and not per_median_call(m)]
    return chosen


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


def judge(base: dict[str, Any], new: dict[str, Any], metric: str = "median_ms") -> Pair:
    """The verdict on one metric of one case measured ok in both runs."""
    pair = Pair(key=base["case_id"], label=base["label"], axes=_axes(base), metric=metric)
    pair.base, pair.new = _numbers(base).get(metric), _numbers(new).get(metric)
    if pair.base is None or pair.new is None:
        pair.why = f"{metric} missing in {'BASE' if pair.base is None else 'NEW'}"
        return pair
    if pair.base < 0 or pair.new < 0:
        pair.why = "negative values: no ratio"
        return pair
    if pair.base == 0:
        pair.ratio = 1.0 if pair.new == 0 else math.inf
    else:
        pair.ratio = pair.new / pair.base
    base_samples, new_samples = samples_for(base, metric), samples_for(new, metric)
    if base_samples is not None and new_samples is not None and math.isfinite(pair.ratio) and pair.ratio > 0:
        change, pair.p_value, pair.why = verdict_from_samples(base_samples, new_samples, pair.ratio)
        doubt = _untrusted_timing(base, new)
        if change in ("higher", "lower") and doubt:
            change, pair.why = "unclear", f"{pair.why}, but {doubt}"
    elif is_speed(metric):
        change, pair.why = "unclear", "one timing, no raw samples: its noise is unknown"
    elif metric in CPU_MEASURED_MEMORY and base.get("device") == new.get("device") == "cpu":
        change, pair.why = _beyond_memory_noise(pair.base, pair.new), "against measured CPU memory noise"
    else:
        change, pair.why = _by_ratio(pair.ratio), "no samples: ratio only"
    pair.verdict = _word(metric, change)
    return pair


def _untrusted_timing(base: dict[str, Any], new: dict[str, Any]) -> str:
    """Why the runs' timings of this case cannot be held against each other, or '': the harness
    flagged one noisy, or other processes ran on the CPU while it was timed."""
    reasons = []
    for flag, words in (("noisy", "noisy in"), ("other_processes", "timed beside other processes in")):
        roles = [role for role, record in (("BASE", base), ("NEW", new)) if record.get("metrics", {}).get(flag)]
        if roles:
            reasons.append(f"{words} {' and '.join(roles)}")
    return "; ".join(reasons)


def samples_for(record: dict[str, Any], metric: str) -> list[float] | None:
    """The raw samples behind a metric, in its own unit: its own per-call samples where the
    record keeps them (metric_samples: TTFT, inter-token latency, decode tokens/s), samples_ms
    for median_ms, and work / sample for the rates derived from the median (metric x
    median_ms = the work)."""
    own = (record.get("metric_samples") or {}).get(metric)
    if own:
        return [s for s in own if isinstance(s, (int, float)) and s > 0] or None
    samples = [s for s in record.get("samples_ms") or [] if isinstance(s, (int, float)) and s > 0]
    if not samples:
        return None
    if metric == "median_ms":
        return samples
    median, value = _numbers(record).get("median_ms"), _numbers(record).get(metric)
    if per_median_call(metric) and median and value:
        return [value * median / s for s in samples]
    return None


def _word(metric: str, change: str) -> str:
    """'higher'/'lower' in the metric's terms: faster/slower for times and rates, else better/worse."""
    if change not in ("higher", "lower"):
        return change
    good = (change == "higher") == higher_is_better(metric)
    if is_speed(metric):
        return "faster" if good else "slower"
    return "better" if good else "worse"


def _beyond_memory_noise(base: float, new: float) -> str:
    """'same' within MEMORY_FLOOR_BYTES + MEMORY_BAND x the smaller figure, else 'higher'/'lower'."""
    if abs(new - base) <= MEMORY_FLOOR_BYTES + MEMORY_BAND * min(base, new):
        return "same"
    return "higher" if new > base else "lower"


def _by_ratio(ratio: float) -> str:
    if abs(ratio - 1) <= SAME_BAND:
        return "same"
    return "higher" if ratio > 1 else "lower"


def verdict_from_samples(base: list[float], new: list[float], ratio: float) -> tuple[str, float | None, str]:
    """(change, p-value, why) from the raw samples of both runs: change is 'higher' or
    'lower' (NEW against BASE, in the samples' unit), 'same' or 'unclear'."""
    fewest = min(len(base), len(new))
    if fewest < MIN_SAMPLES:
        return "unclear", None, f"too few samples ({len(base)}, {len(new)})"
    p_value = float(mannwhitneyu(base, new, alternative="two-sided").pvalue)
    if abs(ratio - 1) <= SAME_BAND:
        return "same", p_value, f"within {SAME_BAND:.0%}"
    significant = p_value < ALPHA
    separate = _cis_apart(base, new)
    if significant and separate:
        return ("higher" if ratio > 1 else "lower"), p_value, "U test and CIs agree"
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
    ratios = [p.ratio for p in pairs if p.ratio and 0 < p.ratio < math.inf]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None
