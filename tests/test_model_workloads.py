"""The model and train workloads on tiny cases: checks pass, work and stats are filled in."""
from __future__ import annotations

import math

import pytest

import torch

from harness.case import Case
from harness.errors import Skip
from impls.models import pretrained
from impls.models.lm import LanguageModel
from tests.conftest import make_case, prepare


def _case(workload: str, family: str, impl: str, params: dict, impl_params: dict | None = None) -> Case:
    return make_case(workload, family, impl, **params, **(impl_params or {}))


@pytest.mark.parametrize("impl, direction", [("transformer", "fwd"), ("lstm", "train_step")])
def test_model_workload_checks_incremental_decoding_and_counts_work(impl, direction):
    case = _case("model", "model", impl, {"batch": 2, "seq_len": 16, "d_model": 32, "n_layers": 1,
                                          "vocab_size": 50, "direction": direction})
    prepared = prepare(case)
    checked = prepared.check()
    assert checked["within_tolerance"] == 1.0 and checked["rel_err"] < 1e-4
    prepared.run()
    stats = prepared.stats()
    assert prepared.work["tokens"] == 32
    factor = 6 if direction == "train_step" else 2
    assert prepared.work["flops"] >= factor * stats["param_count"] * 32
    assert stats["state_bytes_per_seq"] > 0


@pytest.mark.parametrize("impl", ["gru", "transformer"])
def test_model_workload_matches_a_parameter_target_and_reports_the_deviation(impl):
    case = _case("model", "model", impl, {"batch": 1, "seq_len": 8, "target_params": 60_000, "n_layers": 1,
                                          "vocab_size": 50})
    stats = prepare(case).stats()
    assert stats["target_params"] == 60_000
    assert stats["param_deviation"] == pytest.approx(stats["param_count"] / 60_000 - 1)
    assert abs(stats["param_deviation"]) < 0.05


def test_model_workload_records_moe_routing_only_for_moe_models():
    params = {"batch": 2, "seq_len": 16, "d_model": 32, "n_layers": 2, "vocab_size": 50}
    moe = prepare(_case("model", "model", "moe_transformer", params, {"capacity_factor": 0.5})).stats()
    assert 0 < moe["moe_tokens_dropped"] < 1  # half the capacity the assignments need: some dropped
    assert 1 <= moe["moe_load_max_over_mean"] <= 4 and moe["moe_balance_loss"] >= 1 - 1e-6
    dense = prepare(_case("model", "model", "transformer", params)).stats()
    assert not any(k.startswith("moe_") for k in dense)


def test_model_workload_runs_the_attention_impl_the_suite_chose():
    params = {"batch": 2, "seq_len": 16, "d_model": 32, "n_layers": 1, "vocab_size": 50}
    prepared = prepare(_case("model", "model", "transformer", params, {"attention": "chunked"}))
    assert prepared.check()["within_tolerance"] == 1.0
    with pytest.raises(Skip, match="flash"):  # a CUDA-only kernel: skipped here, with the reason
        prepare(_case("model", "model", "transformer", params, {"attention": "flash_attn"}))


def test_model_workload_benchmarks_a_local_gpt2_checkpoint_at_its_own_size(tmp_path):
    torch.manual_seed(0)
    config = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 300, "n_positions": 64}
    original = LanguageModel(pretrained.gpt2_config(config))
    pretrained.save_gpt2(original, tmp_path)
    params = {"batch": 2, "seq_len": 16, "direction": "train_step"}
    prepared = prepare(_case("model", "model", "pretrained", params, {"checkpoint": str(tmp_path)}))
    assert prepared.check()["within_tolerance"] == 1.0
    prepared.run()
    stats = prepared.stats()
    loaded = pretrained.from_pretrained(tmp_path)  # with GPT-2's attention biases
    assert stats["param_count"] == sum(p.numel() for p in loaded.parameters())
    assert stats["d_model"] == 32
    with pytest.raises(Skip, match="64 positions"):
        prepare(_case("model", "model", "pretrained", {"seq_len": 128}, {"checkpoint": str(tmp_path)}))


@pytest.mark.slow
def test_train_workload_reports_bleu_and_a_loss_curve_for_seq2seq():
    case = _case("train", "seq2seq", "lstm_attention", {"task": "numbers", "steps": 3, "batch": 4, "d_model": 16,
                                                        "n_layers": 1, "eval_samples": 8, "record_every": 1,
                                                        "scheduled_sampling": 0.5, "curriculum": True})
    prepared = prepare(case)
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
    stats = prepare(case).stats()
    expected = {"extrapolation": "val_ppl_4x", "mqar": "accuracy"}[task]
    assert math.isfinite(stats[expected]) and stats["param_count"] > 0


@pytest.mark.slow
def test_train_workload_sizes_seq2seq_to_a_budget_and_records_moe_routing():
    params = {"task": "numbers", "steps": 2, "batch": 4, "target_params": 30_000, "n_layers": 1, "eval_samples": 4}
    seq2seq = prepare(_case("train", "seq2seq", "lstm_attention", params)).stats()
    assert abs(seq2seq["param_deviation"]) < 0.05 and seq2seq["target_params"] == 30_000
    lm = {"task": "mqar", "steps": 2, "batch": 2, "seq_len": 32, "target_params": 30_000, "n_layers": 1,
          "eval_samples": 4, "n_memorize": 4, "n_symbols": 8}
    stats = prepare(_case("train", "model", "moe_transformer", lm)).stats()
    assert abs(stats["param_deviation"]) < 0.05 and 0 <= stats["moe_tokens_dropped"] <= 1
