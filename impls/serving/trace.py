"""Request traces: when requests arrive and how long their prompts and outputs are.

Arrivals are a renewal process at `rate` requests/s: "poisson" (exponential
gaps, coefficient of variation 1) or "gamma" (gamma gaps with the same mean
and coefficient of variation `burstiness` > 1: clumps of requests separated by
lulls). Prompt and output lengths lie in [min, max] and follow `length_dist`:
"fixed" (every request max), "uniform", "lognormal", the heavy right tail
of real chat traces (most requests short, a few long): median at the
geometric mean of min and max, min and max at the 1st and 99th percentiles,
draws clamped to the range; or "lognormal_mean": a lognormal with a given mean
and log-space spread sigma (a published dataset's mean length, e.g. vLLM's
ShareGPT and Alpaca traces), clamped to the range. Everything is drawn from one seeded generator, so
a trace is a function of its arguments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Request:
    id: int
    arrival_s: float  # seconds after the trace starts
    prompt: torch.Tensor  # (prompt_len,) long
    output_len: int  # tokens to generate (the first one comes from the prefill)


LENGTHS = ("fixed", "uniform", "lognormal", "lognormal_mean")
Z_99 = 2.3263  # the standard normal's 99th percentile


def make_trace(n_requests: int, rate: float, arrival: str = "poisson", burstiness: float = 1.0,
               prompt_len: tuple[int, int] = (8, 32), output_len: tuple[int, int] = (4, 32),
               vocab_size: int = 256, seed: int = 0, length_dist: str = "uniform",
               means: tuple[float, float] | None = None, sigma: float = 1.0) -> list[Request]:
    """`n_requests` requests sorted by arrival; rate in requests/s; `means` (prompt, output)
    and `sigma` for length_dist "lognormal_mean"."""
    if rate <= 0 or n_requests < 1:
        raise ValueError(f"need rate > 0 and n_requests >= 1, got {rate}, {n_requests}")
    g = torch.Generator().manual_seed(seed)
    gaps = arrival_gaps(n_requests, rate, arrival, burstiness, g)
    arrivals = torch.cumsum(gaps, 0) - gaps[0]  # the first request arrives at t = 0
    prompt_mean, output_mean = means or (None, None)
    prompts = draw_lengths(n_requests, prompt_len, length_dist, g, prompt_mean, sigma)
    outputs = draw_lengths(n_requests, output_len, length_dist, g, output_mean, sigma)
    return [Request(i, float(arrivals[i]), torch.randint(0, vocab_size, (int(prompts[i]),), generator=g),
                    int(outputs[i])) for i in range(n_requests)]


def arrival_gaps(n: int, rate: float, arrival: str, burstiness: float, g: torch.Generator) -> torch.Tensor:
    """n inter-arrival gaps (s) with mean 1/rate."""
    if arrival == "poisson":
        return -torch.log1p(-torch.rand(n, generator=g, dtype=torch.float64)) / rate
    if arrival == "gamma":
        # gamma(shape a, scale th): mean a*th = 1/rate, cv = 1/sqrt(a) = burstiness
        shape = 1.0 / burstiness ** 2
        return _gamma(n, shape, g) / (shape * rate)
    raise ValueError(f"unknown arrival process '{arrival}'; valid: poisson, gamma")


def _gamma(n: int, shape: float, g: torch.Generator) -> torch.Tensor:
    """Gamma(shape, 1) draws from a seeded generator (torch's sampler takes no generator):
    Marsaglia-Tsang for shape >= 1, boosted by U^(1/shape) below 1."""
    boost = shape < 1
    a = shape + 1 if boost else shape
    d = a - 1 / 3
    c = 1 / (9 * d) ** 0.5
    out = torch.empty(n, dtype=torch.float64)
    filled = 0
    while filled < n:
        x = torch.randn(2 * n, generator=g, dtype=torch.float64)
        u = torch.rand(2 * n, generator=g, dtype=torch.float64)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x ** 2 + d - d * v + d * torch.log(v.clamp(min=1e-300)))
        take = (d * v)[ok][: n - filled]
        out[filled:filled + len(take)] = take
        filled += len(take)
    if boost:
        out = out * torch.rand(n, generator=g, dtype=torch.float64) ** (1 / shape)
    return out


def draw_lengths(n: int, bounds: tuple[int, int], kind: str, g: torch.Generator, mean: float | None = None,
                 sigma: float = 1.0) -> torch.Tensor:
    """n integer lengths in [min, max] from distribution `kind` (one of LENGTHS)."""
    low, high = bounds
    if not 1 <= low <= high:
        raise ValueError(f"length range must satisfy 1 <= min <= max, got {bounds}")
    if kind == "fixed":
        return torch.full((n,), high)
    if kind == "uniform":
        return torch.randint(low, high + 1, (n,), generator=g)
    if kind == "lognormal":
        mu, sigma = (math.log(low) + math.log(high)) / 2, (math.log(high) - math.log(low)) / (2 * Z_99)
        draws = torch.exp(mu + sigma * torch.randn(n, generator=g, dtype=torch.float64))
        return draws.round().clamp(low, high).long()
    if kind == "lognormal_mean":
        if mean is None or mean <= 0:
            raise ValueError("length_dist lognormal_mean needs a positive mean")
        mu = math.log(mean) - sigma ** 2 / 2  # E[exp(N(mu, sigma^2))] = exp(mu + sigma^2 / 2) = mean
        draws = torch.exp(mu + sigma * torch.randn(n, generator=g, dtype=torch.float64))
        return draws.round().clamp(low, high).long()
    raise ValueError(f"unknown length distribution '{kind}'; valid: {', '.join(LENGTHS)}")
