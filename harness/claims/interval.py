"""95% intervals for claim values, from the records' raw samples.

A value comes with bootstrap replicates where the record holds what varies:

- times (median_ms) and the rates the worker derives from them (tokens_per_s, tflops,
  pct_peak_*: work over the median): the median of timing samples resampled with
  replacement (`samples_ms`);
- metrics with their own per-call samples (a generation's time_to_first_token_ms,
  itl_p<q>_ms, decode_tokens_per_s: the `samples_<metric>` column): those resampled;
- memory (peak_extra_bytes): the median of the repeated memory passes
  (`memory_samples_bytes`, `measure.memory_passes` >= 2); one pass gives no interval;
- counts that are arithmetic on tensor sizes or on a simulated trace (EXACT): the value
  itself, with the reason it cannot vary;
- anything else, one number per record: no interval (the verdict is then inconclusive,
  unless the claim pools repeats, e.g. seeds, which are resampled instead).

Ratios resample their two sides independently; fitted exponents resample the samples
of every point and the fit's residuals over the points. The generator is seeded, so a verdict is a
function of the records.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

REPLICATES = 2000
CONFIDENCE = 0.95
SEED = 0

TIME_COLUMNS = {"median_ms"}
# work / median time: a rate scales as the inverse of the timing samples' median
RATE_COLUMNS = {"tokens_per_s", "tflops", "gbps", "pct_peak_flops", "pct_peak_bandwidth", "steps_per_s"}
MEMORY_COLUMNS = {"peak_extra_bytes"}
EXACT = {
    "cache_bytes_final": "bytes of the cache tensors: arithmetic on their shapes",
    "weight_bytes": "bytes of the weight tensors: arithmetic on their shapes",
    "param_count": "a count of parameters",
    "state_bytes": "bytes of parameters, gradients and optimizer state: arithmetic on shapes",
    "kv_waste": "KV bytes reserved vs used on the simulated trace: set by its lengths and the budget",
    "mean_batch": "sequences per model call on the simulated trace: set by its lengths and the budget",
    "comm_bytes_counted": "bytes of the tensors handed to torch.distributed: arithmetic on their shapes",
    "comm_bytes_expected": "the algorithm's bytes per call: arithmetic on the case's sizes",
    "comm_calls": "a count of communication calls",
}


@dataclass(frozen=True)
class Estimate:
    """A value, its 95% interval (None: none can be had) and how the interval was made."""

    value: float
    low: float | None
    high: float | None
    how: str

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self) -> str:
        if not self.has_interval:
            return f"{self.value:.3g} (no interval)"
        if np.isclose(self.low, self.high, rtol=1e-9):
            return f"{self.value:.3g}"
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


@dataclass(frozen=True)
class Draws:
    """A value and its bootstrap replicates (None: none; the value is all there is);
    `exact`: it cannot vary, so a replicate is the value itself."""

    value: float
    replicates: np.ndarray | None
    how: str
    exact: bool = False

    def resampled(self) -> np.ndarray | None:
        if self.exact:
            return np.full(REPLICATES, self.value)
        return self.replicates

    def estimate(self) -> Estimate:
        reps = self.resampled()
        if reps is None:
            return Estimate(self.value, None, None, self.how)
        low, high = np.quantile(reps, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        return Estimate(self.value, float(low), float(high), self.how)


def generator() -> np.random.Generator:
    return np.random.default_rng(SEED)


def median_replicates(samples: list[float], rng: np.random.Generator) -> np.ndarray:
    data = np.asarray(samples, dtype=float)
    picks = rng.integers(0, len(data), size=(REPLICATES, len(data)))
    return np.median(data[picks], axis=1)


def column_draws(row: pd.Series, column: str, rng: np.random.Generator) -> Draws:
    """`column` of one record, with replicates where its raw samples allow."""
    value = float(row[column])
    if column in EXACT:
        return Draws(value, None, EXACT[column], exact=True)
    own = _samples(row, f"samples_{column}")  # per-call samples (metric_samples), whose median it is
    if len(own) >= 2:
        return Draws(value, median_replicates(own, rng), f"{len(own)} per-call samples")
    samples = _samples(row, "samples_ms")
    if column in TIME_COLUMNS | RATE_COLUMNS and len(samples) >= 2:
        medians = median_replicates(samples, rng)
        center = float(np.median(samples))
        reps = value * medians / center if column in TIME_COLUMNS else value * center / medians
        return Draws(value, reps, f"{len(samples)} timing samples")
    passes = _samples(row, "memory_samples_bytes")
    if column in MEMORY_COLUMNS and len(passes) >= 2:
        medians = median_replicates(passes, rng)
        return Draws(value, value * medians / max(float(np.median(passes)), 1.0), f"{len(passes)} memory passes")
    if column in MEMORY_COLUMNS:
        return Draws(value, None, "one memory pass (measure.memory_passes >= 2 gives an interval)")
    if column in TIME_COLUMNS | RATE_COLUMNS:
        return Draws(value, None, f"{len(samples)} timing sample(s): too few to resample")
    return Draws(value, None, f"one {column} per record, no raw samples")


def summed(first: Draws, second: Draws) -> Draws:
    """first + second (a column plus the state a step keeps), replicates added."""
    reps = _pair(first, second, np.add)
    return Draws(first.value + second.value, reps, f"{first.how}; + {second.how}", first.exact and second.exact)


def ratio(top: Draws, bottom: Draws) -> Draws:
    reps = _pair(top, bottom, np.divide)
    return Draws(top.value / bottom.value, reps, _both(top, bottom), top.exact and bottom.exact)


def difference(top: Draws, bottom: Draws) -> Draws:
    reps = _pair(top, bottom, np.subtract)
    return Draws(top.value - bottom.value, reps, _both(top, bottom), top.exact and bottom.exact)


def pooled(repeats: list[Draws], rng: np.random.Generator) -> Draws:
    """One value from repeated records (seeds): their mean, resampled over the repeats."""
    values = np.array([d.value for d in repeats])
    if len(values) < 2:
        return Draws(float(values[0]), None, "one repeat: no interval")
    picks = rng.integers(0, len(values), size=(REPLICATES, len(values)))
    return Draws(float(values.mean()), values[picks].mean(axis=1), f"{len(values)} repeats (seeds)")


def exponent(x: np.ndarray, points: list[Draws], rng: np.random.Generator) -> Draws:
    """Slope of log(value) on log(x). Each replicate resamples every point's own samples (its
    measurement noise) and adds the fit's residuals resampled over the points (how far the
    points stray from one power law): the sizes stay as designed, so a replicate never fits
    a slope to one or two sizes."""
    logx = np.log(x)
    logy = np.log([p.value for p in points])
    slope, intercept = np.polyfit(logx, logy, 1)
    reps = [p.resampled() for p in points]
    if any(r is None for r in reps):
        return Draws(float(slope), None, "a point without raw samples")
    ys = np.log(np.clip(np.stack(reps, axis=1), 1e-300, None))  # (REPLICATES, points)
    residuals = logy - (slope * logx + intercept)
    ys = ys + residuals[rng.integers(0, len(x), size=ys.shape)]
    dx = logx - logx.mean()
    slopes = ((ys - ys.mean(axis=1, keepdims=True)) * dx).sum(axis=1) / (dx ** 2).sum()
    return Draws(float(slope), slopes, f"{len(x)} points (their residuals resampled); {points[0].how} each")


def _pair(first: Draws, second: Draws, op) -> np.ndarray | None:
    a, b = first.resampled(), second.resampled()
    if a is None or b is None:
        return None
    return op(a, b)


def _both(top: Draws, bottom: Draws) -> str:
    return top.how if top.how == bottom.how else f"{top.how} / {bottom.how}"


def _samples(row: pd.Series, column: str) -> list[float]:
    raw = row.get(column)
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return []
    return [float(s) for s in raw if isinstance(s, (int, float, np.floating, np.integer)) and s > 0]
