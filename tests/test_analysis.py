"""Analysis behind reports: scaling exponents, crossovers, Pareto fronts, on known inputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis.crossover import crossovers
from harness.analysis.pareto import pareto_front
from harness.analysis.scaling import fit_exponent


def test_fit_exponent_recovers_power_laws_from_ok_cases_only():
    x = np.array([64, 128, 256, 512] * 2)
    frame = pd.DataFrame({"label": ["quad"] * 4 + ["lin"] * 4, "seq_len": x, "status": "ok",
                          "median_ms": np.r_[3e-4 * x[:4] ** 2, 0.01 * x[4:]]})
    frame.loc[len(frame)] = {"label": "quad", "seq_len": 1024, "status": "wrong", "median_ms": 1e-9}
    fits = fit_exponent(frame).set_index("label")
    assert fits.loc["quad", "exponent"] == pytest.approx(2.0) and fits.loc["quad", "n_points"] == 4
    assert fits.loc["lin", "exponent"] == pytest.approx(1.0) and fits.loc["lin", "r2"] == pytest.approx(1.0)


def test_crossover_is_interpolated_in_log_log_space():
    table = pd.DataFrame({"label": "fast", "seq_len": [64, 256, 1024], "speedup": [0.5, 2.0, 4.0]})
    row = crossovers(table, "seq_len", ["label"]).iloc[0]
    # log2 speedup goes -1 -> +1 between 64 and 256: halfway in log space is 128
    assert row["faster"] == "above" and row["crossover"] == pytest.approx(128.0)
    slower = crossovers(table.assign(speedup=[0.5, 0.6, 0.9]), "seq_len", ["label"]).iloc[0]
    assert slower["faster"] == "nowhere" and math.isnan(slower["crossover"])


def test_pareto_front_keeps_only_undominated_points():
    mask = pareto_front(np.array([1.0, 2.0, 3.0, 1.5, 2.0]), np.array([3.0, 1.0, 0.5, 3.0, 2.0]))
    assert mask.tolist() == [True, True, True, False, False]
