"""Analysis behind reports: scaling exponents, crossovers, Pareto fronts, metric directions, on known inputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.analysis.crossover import crossovers
from harness.metrics import cost_ratio, higher_is_better
from harness.analysis.pareto import pareto_front
from harness.analysis.scaling import fit_exponent
from harness.analysis.speedup import speedups


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


@pytest.mark.parametrize("metric", ["tflops", "gbps", "tokens_per_s", "output_tokens_per_s", "acceptance_rate",
                                    "accuracy", "bleu", "pct_peak_flops", "pct_peak_bandwidth", "requests_per_s",
                                    "goodput_requests_per_s", "pct_roofline"])
def test_rates_fractions_of_peak_and_scores_are_higher_is_better(metric):
    assert higher_is_better(metric)
    assert cost_ratio(metric, 0.5) == pytest.approx(2.0)  # half the rate costs twice as much


@pytest.mark.parametrize("metric", ["median_ms", "first_call_ms", "peak_extra_bytes", "rel_err", "val_loss",
                                    "val_ppl", "peak_ratio", "state_bytes_per_seq", "kv_waste", "makespan_s"])
def test_times_sizes_errors_and_losses_are_lower_is_better(metric):
    assert not higher_is_better(metric)
    assert cost_ratio(metric, 2.0) == pytest.approx(2.0)


def test_speedup_follows_the_metric_direction():
    frame = pd.DataFrame({"run": "r", "label": ["base", "fast"], "seq_len": 64, "status": "ok", "reason": "",
                          "median_ms": [10.0, 5.0], "tflops": [1.0, 2.0]})
    for metric in ("median_ms", "tflops"):
        table = speedups(frame, "base", ["seq_len"], metric)
        assert table["speedup"].tolist() == [pytest.approx(2.0)], metric  # twice as fast either way


def test_pareto_front_maximises_a_higher_is_better_speed_axis():
    tflops, error = np.array([1.0, 2.0, 3.0, 2.0]), np.array([0.1, 0.2, 0.3, 0.4])
    assert pareto_front(tflops, error, cost_higher_is_better=True).tolist() == [True, True, True, False]
    assert pareto_front(tflops, error).tolist() == [True, False, False, False]
