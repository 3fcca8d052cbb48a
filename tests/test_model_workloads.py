"""The model and train workloads on tiny cases: checks pass, work and stats are filled in."""
from __future__ import annotations

import math

import pytest

from harness import workloads
from harness.case import Case
from impls import registry


def _case(workload: str, family: str, impl: str, params: dict, impl_params: dict | None = None) -> Case:
    impl_params = impl_params or {}
    return Case(suite="test", workload=workload, family=family, impl=impl, label=impl,
                params={**params, **impl_params}, impl_params=tuple(impl_params), axes=(), device="cpu")


@pytest.mark.parametrize("impl, direction", [("transformer", "fwd"), ("lstm", "train_step")])
def test_model_workload_checks_incremental_decoding_and_counts_work(impl, direction):
    case = _case("model", "model", impl, {"batch": 2, "seq_len": 16, "d_model": 32, "n_layers": 1,
                                          "vocab_size": 50, "direction": direction})
    prepared = workloads.get("model").prepare(case, registry.get("model", impl))
    checked = prepared.check()
    assert checked["within_tolerance"] == 1.0 and checked["rel_err"] < 1e-4
    prepared.run()
    stats = prepared.stats()
    assert prepared.work["tokens"] == 32
    factor = 6 if direction == "train_step" else 2
    assert prepared.work["flops"] >= factor * stats["param_count"] * 32
    assert stats["state_bytes_per_seq"] > 0


def test_model_workload_matches_a_parameter_target():
    case = _case("model", "model", "gru", {"batch": 1, "seq_len": 8, "target_params": 60_000, "n_layers": 1,
                                           "vocab_size": 50})
    stats = workloads.get("model").prepare(case, registry.get("model", "gru")).stats()
    assert abs(stats["param_count"] - 60_000) / 60_000 < 0.1


@pytest.mark.slow
def test_train_workload_reports_bleu_and_a_loss_curve_for_seq2seq():
    case = _case("train", "seq2seq", "lstm_attention", {"task": "numbers", "steps": 3, "batch": 4, "d_model": 16,
                                                        "n_layers": 1, "eval_samples": 8, "record_every": 1,
                                                        "scheduled_sampling": 0.5, "curriculum": True})
    prepared = workloads.get("train").prepare(case, registry.get("seq2seq", "lstm_attention"))
    assert not prepared.timed
    stats = prepared.stats()
    assert 0 <= stats["bleu"] <= 100 and 0 <= stats["exact_match"] <= 1
    assert len(stats["loss_curve"]) == 3 and all(math.isfinite(x) for x in stats["loss_curve"])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["extrapolation", "mqar"])
def test_train_workload_lm_tasks_report_their_metrics(task):
    params = {"task": task, "steps": 2, "batch": 2, "seq_len": 32, "d_model": 16, "n_layers": 1,
              "eval_tokens": 256, "eval_samples": 4, "n_memorize": 4, "n_symbols": 8}
    case = _case("train", "model", "transformer", params, {"positional": "sinusoidal"})
    stats = workloads.get("train").prepare(case, registry.get("model", "transformer")).stats()
    expected = {"extrapolation": "val_ppl_4x", "mqar": "accuracy"}[task]
    assert math.isfinite(stats[expected]) and stats["param_count"] > 0
