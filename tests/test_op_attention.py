"""The attention op workload: check before timing, analytic work, impossible points skipped."""
from __future__ import annotations

import pytest

from harness import workloads
from harness.case import Case
from harness.errors import Skip
from impls import registry
from impls.attention import cost


def case(impl="naive", **params):
    base = {"batch": 2, "heads": 4, "seq_len": 24, "head_dim": 16, "precision": "fp32", "causal": False}
    base.update(params)
    return Case(suite="t", workload="op", family="attention", impl=impl, label=impl, params=base,
                impl_params=(), axes=("seq_len",), device="cpu")


def prepare(c):
    return workloads.get("op").prepare(c, registry.get("attention", c.impl))


@pytest.mark.parametrize("direction", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_impl_passes_its_check(direction, causal):
    result = prepare(case(direction=direction, causal=causal, kv_heads=2)).check()
    assert result["within_tolerance"] == 1.0
    assert result["rel_err"] < 1e-5
    assert ("grad_rel_err" in result) == (direction == "fwd_bwd")


def test_wrong_impl_fails_its_check():
    result = prepare(case(impl="test_wrong")).check()
    assert result["within_tolerance"] == 0.0 and result["rel_err"] > result["tolerance"]


def test_run_executes_forward_and_backward():
    prepared = prepare(case(direction="fwd_bwd"))
    prepared.run()  # gradients reach the inputs without error, repeatedly
    prepared.run()


def test_work_counts_follow_the_flop_conventions():
    full = prepare(case(seq_len=64)).work
    assert full["flops"] == 4 * 2 * 4 * 64 * 64 * 16
    causal = prepare(case(seq_len=64, causal=True)).work
    assert causal["flops"] == 4 * 2 * 4 * 16 * (64 * 65 // 2)
    backward = prepare(case(seq_len=64, direction="fwd_bwd")).work
    assert backward["flops"] == pytest.approx(3.5 * full["flops"])
    assert full["bytes_moved"] == 4 * (2 * 2 * 4 * 64 * 16 + 2 * 2 * 4 * 64 * 16)


def test_causal_pairs_with_longer_keys():
    assert cost.attended_pairs(2, 4, causal=True) == 3 + 4
    assert cost.attended_pairs(3, 3, causal=True) == 6


@pytest.mark.parametrize("params, reason", [
    ({"kv_heads": 3}, "must divide heads"),
    ({"causal": True, "kv_len": 8}, "kv_len >= seq_len"),
])
def test_impossible_points_are_skipped_with_reason(params, reason):
    with pytest.raises(Skip, match=reason):
        prepare(case(**params))


def test_check_of_a_long_case_runs_on_a_shortened_slice():
    prepared = prepare(case(batch=3, heads=8, kv_heads=2, seq_len=4096))
    result = prepared.check()
    assert result["check_seq_len"] < 4096 and result["within_tolerance"] == 1.0


def test_work_uses_defaults_for_params_a_suite_leaves_out():
    c = Case(suite="t", workload="op", family="attention", impl="naive", label="naive",
             params={"seq_len": 32}, impl_params=(), axes=("seq_len",), device="cpu")
    work = prepare(c).work
    assert work["flops"] == 4 * 1 * 8 * 64 * 32 * 32  # batch 1, heads 8, head_dim 64 by default
