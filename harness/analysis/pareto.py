"""The Pareto front of quality against speed: the cases nothing else beats on both."""
from __future__ import annotations

import numpy as np


def pareto_front(cost: np.ndarray, error: np.ndarray, cost_higher_is_better: bool = False) -> np.ndarray:
    """Boolean mask of points not dominated: no other point is as good on both axes and
    better on one. Lower error is better; lower cost too (ms, bytes) unless
    `cost_higher_is_better` (TFLOP/s, tokens/s)."""
    cost, error = np.asarray(cost, dtype=float), np.asarray(error, dtype=float)
    if cost_higher_is_better:
        cost = -cost
    keep = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        no_worse = (cost <= cost[i]) & (error <= error[i])
        better = (cost < cost[i]) | (error < error[i])
        keep[i] = not np.any(no_worse & better)
    return keep
