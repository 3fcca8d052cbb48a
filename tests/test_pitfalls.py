"""The pitfall checks (harness/pitfalls) on every registered LM preset, and on models
built to fall into each pitfall, which the checks must catch."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tests.fixtures.misbehaving  # noqa: F401  (registers test_leaky and test_leaky_by_one)
from harness.case import Case
from harness.pitfalls.causal_leak import causal_leak
from harness.pitfalls.exposure_bias import exposure_bias
from harness.pitfalls.grad_accum import grad_accumulation
from harness.pitfalls.mixed_precision import mixed_precision
from harness.quality.training import Budget
from harness.workloads.pitfalls import Pitfalls
from impls import models, registry

PRESETS = [n for n in registry.names("model") if not registry.get("model", n).fixed_size]
TINY = {"vocab_size": 32, "d_model": 32, "n_layers": 2, "max_seq_len": 64}


def _model(name: str, seed: int = 0, **params) -> nn.Module:
    torch.manual_seed(seed)
    return models.config(name, "model", **TINY, **params).build()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _case(impl: str, **params) -> Case:
    params = {"d_model": 32, "n_layers": 2, "vocab_size": 32, "batch": 4, "seq_len": 24, **params}
    impl_keys = tuple(k for k in params if k in registry.get("model", impl).params)
    return Case(suite="t", workload="pitfalls", family="model", impl=impl, label=impl, params=params,
                impl_params=impl_keys, axes=(), device="cpu")


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_causal_and_reads_its_input(name):
    result = causal_leak(_model(name), TINY["vocab_size"], batch=2, seq_len=24, gen=_gen())
    assert result["perturbation_seen"] == 1.0
    assert result["causal_ok"] == 1.0, result


@pytest.mark.parametrize("attention, first_leak", [("test_leaky", 0.0), ("test_leaky_by_one", 0.0)])
def test_a_leaking_attention_makes_the_case_wrong(attention, first_leak):
    case = _case("transformer", attention=attention, check="causal_leak")
    result = Pitfalls().prepare(case, registry.get("model", "transformer")).check()
    assert result["within_tolerance"] == 0.0
    assert result["rel_err"] > 1e-2
    assert result["first_leak_position"] == first_leak


def test_mixture_of_experts_with_token_dropping_leaks_the_future():
    # below experts / top_k, capacity drops tokens by their place in the whole sequence, so
    # which earlier tokens are dropped depends on later ones
    assert causal_leak(_model("moe_transformer", capacity_factor=2.0), 32, 4, 32, _gen())["causal_ok"] == 1.0
    leaking = causal_leak(_model("moe_transformer", capacity_factor=1.0), 32, 4, 32, _gen())
    assert leaking["causal_ok"] == 0.0 and leaking["leak_rel"] > 1e-2


def test_a_model_that_ignores_its_input_cannot_pass():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.randn(32))

        def forward(self, tokens):
            return self.logits.expand(*tokens.shape, 32)

    result = causal_leak(Constant(), 32, 2, 16, _gen())
    assert result["perturbation_seen"] == 0.0 and result["causal_ok"] == 0.0


@pytest.mark.parametrize("name", PRESETS)
def test_accumulated_gradients_equal_one_batch_except_across_batch_losses(name):
    result = grad_accumulation(_model(name), 32, batch=4, seq_len=8, micro_batches=2, gen=_gen(1))
    # MoE adds a load-balancing loss computed over the batch's routing: not a sum over rows
    assert result["accumulation_equivalent"] == float(name != "moe_transformer"), result


def test_grad_accumulation_refuses_micro_batches_that_do_not_divide_the_batch():
    with pytest.raises(ValueError, match="must divide batch"):
        grad_accumulation(_model("s4d"), 32, batch=6, seq_len=8, micro_batches=4, gen=_gen())


def test_loss_scaling_recovers_gradients_that_fp16_flushes_to_zero():
    # a loss 1e-4 of its size puts most activation gradients below fp16's smallest subnormal
    result = mixed_precision(_model("transformer"), 32, 8, 16, "fp16", _gen(2), loss_weight=1e-4)
    assert result["underflow_frac_unscaled"] > 0.5 and result["grad_rel_err_unscaled"] > 0.1
    assert result["underflow_frac_scaled"] < 0.01 and result["grad_rel_err_scaled"] < 1e-2


def test_grad_scaler_backs_off_after_an_overflow_and_then_matches_fp32():
    result = mixed_precision(_model("gru_cell"), 32, 8, 16, "fp16", _gen(3), init_scale=2.0 ** 40)
    assert result["overflow_backoffs"] > 0 and result["loss_scale"] < 2.0 ** 40
    assert result["nonfinite_scaled"] == 0.0 and result["grad_rel_err_scaled"] < 1e-2


def test_bf16_keeps_fp32_range_so_scaling_changes_nothing():
    result = mixed_precision(_model("transformer"), 32, 4, 8, "bf16", _gen(4), loss_weight=1e-4)
    assert result["underflow_frac_unscaled"] < 0.01
    assert result["grad_rel_err_scaled"] == pytest.approx(result["grad_rel_err_unscaled"], rel=0.05)


def test_exposure_bias_compares_teacher_forced_and_free_running_answers_of_one_model():
    def make(vocab: int, length: int) -> nn.Module:
        torch.manual_seed(5)
        return models.config("transformer", "model", vocab_size=vocab, d_model=32, n_layers=1,
                             max_seq_len=length).build()

    result = exposure_bias(make, Budget(steps=60, lr=3e-3, warmup_steps=5), batch=16, seq_len=16,
                           n_memorize=4, n_symbols=4, eval_samples=32, seed=0)
    by_position = result["fr_accuracy_by_position"]
    assert len(by_position) == 4
    assert sum(by_position) / 4 == pytest.approx(result["fr_accuracy"], abs=1e-3)
    assert result["exposure_gap"] == pytest.approx(result["tf_accuracy"] - result["fr_accuracy"])
    # the first answer token has the same (true) prefix either way: decoding's prefill
    # must predict it as the full forward does
    assert by_position[0] == result["tf_accuracy_by_position"][0]
    assert 0.0 <= result["fr_exact"] <= result["fr_accuracy"] <= 1.0


@pytest.mark.parametrize("check, precision", [("mixed_precision", "fp32"), ("grad_accum", "fp16")])
def test_a_check_at_a_precision_it_does_not_run_is_skipped_with_the_reason(check, precision):
    from harness.errors import Skip

    with pytest.raises(Skip, match="mixed_precision runs at fp16 or bf16"):
        Pitfalls().prepare(_case("transformer", check=check, precision=precision), registry.get("model", "transformer"))
