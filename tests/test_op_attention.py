"""The attention op workload: check before timing, analytic work, impossible points skipped."""
from __future__ import annotations

import pytest
import torch

from harness.errors import Skip
from impls import registry
from impls.attention import cost
from tests.conftest import make_case, prepare


def case(impl="naive", **params):
    base = {"batch": 2, "heads": 4, "seq_len": 24, "head_dim": 16, "precision": "fp32", "causal": False}
    return make_case("op", "attention", impl, axes=("seq_len",), **(base | params))


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
    work = prepare(make_case("op", "attention", "naive", axes=("seq_len",), seq_len=32)).work
    assert work["flops"] == 4 * 1 * 8 * 64 * 32 * 32  # batch 1, heads 8, head_dim 64 by default


def test_approximate_impls_report_both_errors_against_exact_attention():
    metrics = prepare(case(impl="local", window=4, causal=True)).check()
    assert metrics["within_tolerance"] == 1.0 and metrics["rel_err"] < 1e-5  # against its own reference
    assert metrics["exact_max_abs_err"] > 1e-2 and metrics["exact_rel_err"] > 1e-2  # the window drops keys
    assert "exact_max_abs_err" not in prepare(case()).check()  # exact impls: rel_err is that already


def _runs_on_this_cpu() -> list[str]:
    """Every registered impl that runs on this CPU (at fp32, an int8 impl at int8), read from
    the registry: a new impl is checked without editing a list."""
    def runs(impl: registry.Impl) -> bool:
        return registry.available(impl, "cpu", "fp32" if "fp32" in impl.precisions else "int8")[0]

    return [n for n in registry.names("attention") if runs(registry.get("attention", n))
            and n not in ("flex", "flex_window")]  # tests/test_flex_attention.py (slow first call)


@pytest.mark.parametrize("name", _runs_on_this_cpu())
def test_every_impl_passes_its_op_check(name):
    """Every registered impl is right against the reference it declares: an approximate
    one (or a masked reference) checked against exact attention would read `wrong`."""
    impl = registry.get("attention", name)
    own = {k: v for k, v in {"window": 4, "global_tokens": 2, "block_size": 4, "stride": 4, "proj_k": 8,
                             "pad_tokens": 3, "dropout_p": 0.1}.items() if k in impl.params}
    precision = "fp32" if "fp32" in impl.precisions else "int8"
    # causal where the impl defines it (linformer, LRA's local and the padded benchmark do not)
    causal = registry.refusal(impl, **own, causal=True, seq_len=24, kv_len=24, heads=4, kv_heads=4, head_dim=16,
                              device="cpu", direction="fwd") is None
    result = prepare(case(impl=name, causal=causal, precision=precision, **own)).check()
    assert result["within_tolerance"] == 1.0, result


def test_forward_backward_run_leaves_no_gradients_behind():
    """The timed call returns dq, dk, dv and drops them, so the measured peak of a call
    holds the gradients and no call starts with the last one's still allocated."""
    prepared = prepare(case(direction="fwd_bwd"))
    grads = prepared.run()
    assert len(grads) == 3 and all(g is not None for g in grads)
    assert prepared.run.__closure__ and all(
        getattr(cell.cell_contents, "grad", None) is None for cell in prepared.run.__closure__
        if isinstance(cell.cell_contents, torch.Tensor))


def test_work_counts_int8_inputs_at_the_dtype_they_arrive_in():
    work = prepare(case(impl="int8", precision="int8", seq_len=64)).work
    assert work["bytes_moved"] == 4 * (2 * 2 * 4 * 64 * 16 + 2 * 2 * 4 * 64 * 16)  # fp32 on the CPU
