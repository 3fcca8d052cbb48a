"""Summary statistics of timing samples, kept next to the samples themselves."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Statistics of per-call times in milliseconds."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    iqr_ms: float
    mean_ms: float
    ci_low_ms: float  # 95% confidence interval of the median (order statistics)
    ci_high_ms: float
    n_samples: int
    noise: float  # IQR / median
    noisy: bool

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def median_ci(sorted_samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics."""
    n = len(sorted_samples)
    if n < 6:  # too few for a 95% interval: report the range, honestly wide
        return float(sorted_samples[0]), float(sorted_samples[-1])
    lo = half_binomial_quantile(n, (1 - confidence) / 2)
    hi = n - lo  # by symmetry: scipy's binom.isf(q, n, 0.5), since no CDF value m/2**n equals q
    return float(sorted_samples[max(lo - 1, 0)]), float(sorted_samples[min(hi, n - 1)])


@cache
def half_binomial_quantile(n: int, q: float) -> int:
    """The smallest k with P(Binomial(n, 1/2) <= k) >= q: scipy.stats.binom.ppf(q, n, 0.5), summed
    here because importing scipy.stats costs every worker about a second before its first case."""
    log_all = math.lgamma(n + 1) + n * math.log(0.5)
    cdf = 0.0
    for k in range(n + 1):
        cdf += math.exp(log_all - math.lgamma(k + 1) - math.lgamma(n - k + 1))
        if cdf >= q:
            return k
    return n


def summarize(samples_ms: list[float] | np.ndarray, noisy_above: float = 0.1) -> Summary:
    x = np.sort(np.asarray(samples_ms, dtype=float))
    if len(x) == 0:
        raise ValueError("no samples to summarize")
    q1, median, q3 = (float(v) for v in np.percentile(x, [25, 50, 75]))
    low, high = median_ci(x)
    noise = (q3 - q1) / median if median > 0 else math.inf
    return Summary(median, q1, q3, q3 - q1, float(x.mean()), low, high, len(x), noise, noise > noisy_above)


def precise_enough(samples_ms: list[float], target: float) -> bool:
    """True when the median's 95% CI half-width is within `target` of the median."""
    if len(samples_ms) < 6:
        return False
    x = np.sort(np.asarray(samples_ms, dtype=float))
    low, high = median_ci(x)
    median = float(np.median(x))
    return median > 0 and (high - low) / 2 <= target * median
