"""The Pareto front of quality against speed: the cases nothing else beats on both."""
from __future__ import annotations

import numpy as np


def pareto_front(cost: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Boolean mask of points not dominated: no other point has cost <= and error <=
    with at least one strictly smaller. Lower is better on both axes (ms, relative error)."""
    cost, error = np.asarray(cost, dtype=float), np.asarray(error, dtype=float)
    keep = np.ones(len(cost), dtype=bool)
    for i in range(len(cost)):
        no_worse = (cost <= cost[i]) & (error <= error[i])
        better = (cost < cost[i]) | (error < error[i])
        keep[i] = not np.any(no_worse & better)
    return keep
