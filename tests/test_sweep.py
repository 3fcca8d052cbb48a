"""Sweep expansion, zipped axes, constraints, --where/--only, and budget pruning rules."""
from __future__ import annotations

import pytest

from harness import suite as suites
from harness.expr import Expression, ExprError
from harness.pruning import Pruner
from tests.conftest import tiny_attention_suite


def load(write_suite, **change):
    return suites.load(write_suite(tiny_attention_suite(**change)))


def test_cartesian_product_times_impls(write_suite):
    suite = load(write_suite, impls=["naive", "sdpa_math"], sweep={"seq_len": [16, 32, 64], "causal": [False, True]})
    cases = suites.expand(suite, "cpu")
    assert len(cases) == 3 * 2 * 2
    assert [c.index for c in cases] == list(range(12))
    assert len({c.id for c in cases}) == 12
    # points outer, impls inner: every impl sees the machine in the same state
    assert [c.label for c in cases[:4]] == ["naive", "sdpa_math", "naive", "sdpa_math"]


def test_zipped_axes_move_together(write_suite):
    suite = load(write_suite, sweep={"causal": [False]}, fixed={"head_dim": 16},
                 zip=[{"seq_len": [16, 32], "batch": [4, 2], "heads": [1, 2]}])
    points = [(c.params["seq_len"], c.params["batch"], c.params["heads"]) for c in suites.expand(suite, "cpu")]
    assert points == [(16, 4, 1), (32, 2, 2)]


def test_a_device_section_replaces_axes_fixed_and_measure_on_that_device_only(write_suite):
    suite = load(write_suite, devices={"cpu": {"sweep": {"seq_len": [8]}, "fixed": {"heads": 1},
                                               "measure": {"budget_s": 0.5}}})
    on_cpu, on_cuda = suites.expand(suite, "cpu"), suites.expand(suite, "cuda")
    assert [(c.params["seq_len"], c.params["heads"]) for c in on_cpu] == [(8, 1)]
    assert [(c.params["seq_len"], c.params["heads"]) for c in on_cuda] == [(16, 2), (32, 2)]
    assert on_cpu[0].measure.budget_s == 0.5 and on_cuda[0].measure.budget_s is None
    assert suites.for_device(suite, "cpu").measure.warmup == suite.measure.warmup  # the rest is kept


def test_case_ids_are_stable_across_loads(write_suite):
    first = [c.id for c in suites.expand(load(write_suite), "cpu")]
    second = [c.id for c in suites.expand(load(write_suite), "cpu")]
    assert first == second


def test_impl_param_sweep_applies_only_to_impls_that_take_it(write_suite):
    # test_slow takes no window; a suite param sweep over an impl param must not duplicate it.
    from impls.registry import register

    register("attention", "test_windowed", params={"window": 8})(lambda q, k, v, *, causal, window=8: q)
    suite = load(write_suite, impls=["naive", "test_windowed"], sweep={"seq_len": [16], "window": [4, 8]})
    labels = [(c.label, c.params.get("window")) for c in suites.expand(suite, "cpu")]
    assert labels == [("naive", None), ("test_windowed", 4), ("test_windowed", 8)]


def test_constraints_skip_with_reason_only_where_they_apply(write_suite):
    suite = load(write_suite, sweep={"seq_len": [16, 32], "kv_heads": [2, 3]},
                 constraints=[{"require": "heads % kv_heads == 0", "reason": "kv_heads must divide heads"}])
    reasons = {(c.params["kv_heads"]): suites.constraint_failure(suite, c) for c in suites.expand(suite, "cpu")}
    assert reasons == {2: None, 3: "kv_heads must divide heads"}


def test_where_and_only_filter_cases(write_suite):
    suite = load(write_suite, impls=["naive", "sdpa_math"],
                 sweep={"seq_len": [16, 32, 64], "precision": ["fp32", "fp16"]})
    kept = suites.expand(suite, "cpu", where="seq_len <= 32 and precision == fp16", only=["sdpa_math"])
    assert [(c.label, c.params["seq_len"], c.precision) for c in kept] == [
        ("sdpa_math", 16, "fp16"), ("sdpa_math", 32, "fp16")]


@pytest.mark.parametrize("text", ["__import__('os').system('x')", "seq_len.__class__", "[x for x in y]",
                                  "f(1)", "lambda: 1", "seq_len if 1 else 2"])
def test_expressions_allow_no_code(text):
    with pytest.raises(ExprError):
        Expression(text, {"seq_len", "x", "y", "f"})


def test_expression_arithmetic_and_words():
    expr = Expression("seq_len * 2 >= window and precision in [fp16, bf16] and not causal",
                      {"seq_len", "window", "precision", "causal"}, words={"fp16", "bf16"})
    assert expr({"seq_len": 64, "window": 128, "precision": "bf16", "causal": False})
    assert not expr({"seq_len": 63, "window": 128, "precision": "bf16", "causal": False})
    assert not expr({"seq_len": 64, "window": 128, "precision": "fp32", "causal": False})


def record(label, status, median_ms=100.0, **params):
    return {"label": label, "status": status, "params": params, "metrics": {"median_ms": median_ms}}


def test_pruning_skips_larger_sizes_of_the_same_impl_only():
    pruner = Pruner()
    pruner.observe(record("naive", "oom", seq_len=8192, batch=1, precision="fp32"))
    axes = ("seq_len", "batch", "precision")
    assert pruner.reason("naive", {"seq_len": 16384, "batch": 1, "precision": "fp32"}, axes) == \
        "pruned: oom at seq_len=8192"
    assert pruner.reason("naive", {"seq_len": 16384, "batch": 2, "precision": "fp32"}, axes) is not None
    assert pruner.reason("naive", {"seq_len": 4096, "batch": 2, "precision": "fp32"}, axes) is None
    assert pruner.reason("naive", {"seq_len": 16384, "batch": 1, "precision": "fp16"}, axes) is None
    assert pruner.reason("chunked", {"seq_len": 16384, "batch": 1, "precision": "fp32"}, axes) is None


def test_budget_prunes_after_a_slow_case_but_keeps_it():
    pruner = Pruner(budget_s=2.0)
    pruner.observe(record("naive", "ok", median_ms=500, seq_len=1024))
    assert pruner.reason("naive", {"seq_len": 2048}, ("seq_len",)) is None
    pruner.observe(record("naive", "ok", median_ms=3000, seq_len=2048))
    assert pruner.reason("naive", {"seq_len": 4096}, ("seq_len",)).startswith("pruned: one call over the 2 s budget")


def test_budget_prunes_a_case_whose_linear_lower_bound_is_already_over_it():
    pruner = Pruner(budget_s=2.0)
    pruner.observe(record("naive", "ok", median_ms=900, seq_len=1024, batch=1))
    assert pruner.reason("naive", {"seq_len": 2048, "batch": 1}, ("seq_len", "batch")) is None  # >= 1.8 s
    reason = pruner.reason("naive", {"seq_len": 2048, "batch": 2}, ("seq_len", "batch"))  # >= 3.6 s
    assert reason.startswith("pruned: at least 3.60 s per call predicted over the 2 s budget")
    assert pruner.reason("naive", {"seq_len": 512, "batch": 8}, ("seq_len", "batch")) is None  # not dominated
    assert pruner.reason("chunked", {"seq_len": 4096, "batch": 2}, ("seq_len", "batch")) is None


def test_no_prediction_along_an_axis_that_need_not_add_work():
    pruner = Pruner(budget_s=2.0)
    pruner.observe(record("local", "ok", median_ms=1500, seq_len=1024, window=64))
    assert pruner.reason("local", {"seq_len": 1024, "window": 256}, ("seq_len", "window")) is None


def test_a_failure_forward_prunes_backward_and_a_causal_one_prunes_non_causal():
    pruner = Pruner()
    pruner.observe(record("naive", "oom", seq_len=8192, direction="fwd", causal=True))
    axes = ("seq_len", "direction", "causal")
    assert pruner.reason("naive", {"seq_len": 8192, "direction": "fwd_bwd", "causal": True}, axes) == \
        "pruned: oom at direction=fwd"
    assert pruner.reason("naive", {"seq_len": 8192, "direction": "fwd", "causal": False}, axes) is not None
    pruner = Pruner()
    pruner.observe(record("naive", "oom", seq_len=8192, direction="fwd_bwd", causal=False))
    assert pruner.reason("naive", {"seq_len": 16384, "direction": "fwd", "causal": False}, axes) is None
    assert pruner.reason("naive", {"seq_len": 16384, "direction": "fwd_bwd", "causal": True}, axes) is None


def test_constraints_read_bare_words_like_where(write_suite):
    suite = load(write_suite, impls=["naive", "sdpa_math"], sweep={"seq_len": [16], "precision": ["fp32", "fp16"]},
                 constraints=[{"require": "impl != sdpa_math or precision == fp32", "reason": "fp32 only"}])
    skipped = {(c.label, c.precision) for c in suites.expand(suite, "cpu") if suites.constraint_failure(suite, c)}
    assert skipped == {("sdpa_math", "fp16")}


def test_arithmetic_takes_numbers_only_and_a_missing_parameter_reads_as_absent():
    expr = Expression("heads % kv_heads == 0", {"heads", "kv_heads"})
    assert expr({"heads": 8, "kv_heads": 2}) and not expr({"heads": 8, "kv_heads": 3})
    assert not expr({"heads": 8, "kv_heads": None})  # like a comparison with None: does not hold
    with pytest.raises(ExprError, match="arithmetic needs numbers"):
        Expression("precision * 100000000 == x", {"precision"}, {"x"})({"precision": "fp16"})


@pytest.mark.parametrize("text, holds", [("2 ** 10 == 1024", True), ("(-1) ** 5 < 0", True),
                                         ("1 ** 100000 == 1", True), ("2 ** -3 < 1", True)])
def test_small_powers_evaluate(text, holds):
    assert Expression(text, set())({}) is holds


@pytest.mark.parametrize("text", ["9 ** 9 ** 9 > 1", "2 ** 5000 > 1", "2.0 ** 10000 > 1", "1 / 0 > 1"])
def test_unbounded_arithmetic_is_a_user_error_not_a_hang(text):
    from harness.errors import UserError

    with pytest.raises(UserError, match="cannot be evaluated"):
        Expression(text, set())({})


@pytest.mark.parametrize("key, default, value, problem", [
    ("window", 256, 1, None), ("window", 256, 0, "at least 1"), ("window", 256, True, "an integer"),
    ("window", 256, 2.5, "an integer"), ("pattern_seed", 0, 0, None), ("pattern_seed", 0, -1, "at least 0"),
    ("global_tokens", 16, 0, None), ("num_random_blocks", 2, 0, None), ("top_k", 1, 0, "at least 1"),
    ("kv_heads", None, None, None), ("kv_heads", None, 2, None), ("kv_heads", None, -2, "at least 1"),
    ("capacity_factor", 1.25, 2, None), ("capacity_factor", 1.25, "x", "a number"),
    ("rope_base", 10000.0, -1.0, ">= 0"), ("activation", "gelu", 3, "expected str"),
    ("attention_params", {}, {"window": 4}, None),
])
def test_impl_params_are_judged_by_their_registered_default(key, default, value, problem):
    found = suites._impl_value_problem(key, default, value)
    assert (found is None) if problem is None else (problem in found)


def test_constraints_that_cannot_be_evaluated_fail_at_load_on_any_device(write_suite):
    from harness.errors import UserError

    # evaluates on the CPU's sizes, divides by zero on the GPU's: found at load all the same
    path = write_suite(tiny_attention_suite(devices={"cuda": {"fixed": {"heads": 4}}},
                                            constraints=[{"require": "seq_len / (heads - 4) > 0"}]))
    with pytest.raises(UserError, match=r"constraints\[0\].require: .* at heads=4, seq_len=16: division by zero"):
        suites.load(path)
