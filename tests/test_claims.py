"""Claim verdicts from hand-made records: every verdict is reachable, and the registry is consistent."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.claims import model
from harness.claims.evaluate import NOT_APPLICABLE, NOT_REPRODUCED, PARTLY, REPRODUCED, evaluate
from harness.claims.model import Claim


def make_claim(**change) -> Claim:
    spec = {"id": "fast", "claim": "B is 2-4x faster than A", "source": "a paper, Table 1",
            "conditions": "GPU X, fp16", "suite": "suites/smoke.yaml",
            "metric": {"kind": "ratio", "numerator": "A", "denominator": "B", "match": ["seq_len"]},
            "claimed": {"at_least": 2.0, "at_most": 4.0}, "tolerance": 0.0}
    spec.update(change)
    return Claim.model_validate(spec)


def frame(rows):
    return pd.DataFrame([{"status": "ok", "device": "cpu", **r} for r in rows])


def timings(a_over_b: dict[int, float]):
    rows = []
    for n, ratio in a_over_b.items():
        rows += [{"label": "A", "seq_len": n, "median_ms": ratio}, {"label": "B", "seq_len": n, "median_ms": 1.0}]
    return frame(rows)


@pytest.mark.parametrize("ratios, verdict", [
    ({128: 2.5, 256: 3.9}, REPRODUCED),
    ({128: 1.2, 256: 3.0}, PARTLY),
    ({128: 1.1, 256: 1.3}, NOT_REPRODUCED),
])
def test_ratio_verdicts(ratios, verdict):
    result = evaluate(make_claim(), timings(ratios), "cpu")
    assert result.verdict == verdict
    assert sorted(result.values) == sorted(ratios.values())


def test_wrong_cases_never_count():
    data = timings({128: 3.0})
    data.loc[data["label"] == "B", "status"] = "wrong"
    assert evaluate(make_claim(), data, "cpu").verdict == NOT_APPLICABLE


def test_gpu_claim_is_not_applicable_on_cpu_records():
    result = evaluate(make_claim(needs={"device": "cuda"}), timings({128: 3.0}), "cpu")
    assert result.verdict == NOT_APPLICABLE and "CUDA" in result.note


def test_gpu_claim_judged_from_gpu_records_anywhere():
    data = timings({128: 3.0})
    data["device"] = "cuda"
    assert evaluate(make_claim(needs={"device": "cuda"}), data, "cpu").verdict == REPRODUCED


def test_missing_library_is_the_reason():
    result = evaluate(make_claim(needs={"modules": ["surely_not_installed_xyz"]}), frame([]), "cpu")
    assert result.verdict == NOT_APPLICABLE and "surely_not_installed_xyz" in result.note


def test_exponent_from_a_power_law():
    rows = [{"label": "A", "seq_len": n, "median_ms": 0.001 * n ** 2} for n in (512, 1024, 2048, 4096)]
    claim = make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "seq_len"},
                       claimed={"about": 2.0}, tolerance=0.05)
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == REPRODUCED and result.values[0] == pytest.approx(2.0)


def test_exponent_needs_three_points():
    rows = [{"label": "A", "seq_len": n, "median_ms": n} for n in (512, 1024)]
    claim = make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "seq_len"}, claimed={"about": 1.0})
    assert evaluate(claim, frame(rows), "cpu").verdict == NOT_APPLICABLE


def test_column_and_where_and_aggregate():
    rows = [{"label": "paged", "rate": r, "kv_waste": w} for r, w in ((1, 0.02), (2, 0.03), (4, 0.5))]
    claim = make_claim(metric={"kind": "column", "numerator": "paged", "column": "kv_waste", "where": "rate <= 2"},
                       claimed={"at_most": 0.04})
    assert evaluate(claim, frame(rows), "cpu").verdict == REPRODUCED
    worst = make_claim(metric={"kind": "column", "numerator": "paged", "column": "kv_waste", "aggregate": "max"},
                       claimed={"at_most": 0.04})
    result = evaluate(worst, frame(rows), "cpu")
    assert result.values == [0.5] and result.verdict == NOT_REPRODUCED


def test_difference_metric():
    rows = [{"label": "alibi", "ppl": 5.0, "seq_len": 1}, {"label": "sinusoidal", "ppl": 9.0, "seq_len": 1}]
    claim = make_claim(metric={"kind": "difference", "numerator": "alibi", "denominator": "sinusoidal",
                               "column": "ppl", "match": ["seq_len"]}, claimed={"at_most": 0.0})
    assert evaluate(claim, frame(rows), "cpu").values == [-4.0]


@pytest.mark.parametrize("claimed, value, tolerance, holds", [
    ({"at_least": 2}, 1.9, 0.1, True), ({"at_least": 2}, 1.7, 0.1, False),
    ({"at_most": 0.04}, 0.043, 0.1, True), ({"about": 1.0}, 1.2, 0.1, False),
])
def test_tolerance_widens_each_bound(claimed, value, tolerance, holds):
    assert model.Claimed.model_validate(claimed).holds(value, tolerance) == holds


def test_sides_picked_by_where_within_one_impl():
    rows = [{"label": "transformer", "policy": policy, "rate": rate, "tokens_per_s": tps}
            for rate, (static, continuous) in {4: (10.0, 25.0), 16: (10.0, 31.0)}.items()
            for policy, tps in (("static", static), ("continuous", continuous))]
    claim = make_claim(metric={"kind": "ratio", "column": "tokens_per_s", "numerator": "transformer",
                               "numerator_where": "policy == continuous", "denominator_where": "policy == static",
                               "match": ["rate"]}, claimed={"at_least": 2.0, "at_most": 3.0}, tolerance=0.05)
    result = evaluate(claim, frame(rows), "cpu")
    assert sorted(result.values) == [2.5, 3.1] and result.verdict == REPRODUCED


def test_a_column_no_run_has_is_not_applicable():
    claim = make_claim(metric={"kind": "column", "numerator": "A", "column": "ppl_ratio_4x"}, claimed={"at_most": 1})
    assert evaluate(claim, timings({128: 3.0}), "cpu").verdict == NOT_APPLICABLE


def test_a_missing_column_is_named_as_the_reason():
    claim = make_claim(metric={"kind": "column", "numerator": "A", "column": "pct_peak_flops"}, claimed={"at_least": 50})
    assert evaluate(claim, timings({128: 3.0}), "cpu").note == "the runs' records have no pct_peak_flops column"


def test_an_axis_no_run_has_is_not_applicable():
    claim = make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "new_tokens"}, claimed={"about": 1})
    assert evaluate(claim, timings({128: 3.0, 256: 4.0, 512: 5.0}), "cpu").verdict == NOT_APPLICABLE


def test_two_runs_with_the_same_sweep_values_are_never_mixed():
    first, second = timings({128: 3.0}), timings({128: 1.0})
    first["run"], second["run"] = "run-a", "run-b"
    second.loc[second["label"] == "B", "median_ms"] = 10.0  # A/B across runs would read 0.1 or 30
    result = evaluate(make_claim(), pd.concat([first, second], ignore_index=True), "cpu")
    assert sorted(result.values) == [0.1, 3.0] and result.verdict == PARTLY
    rows = [{"label": "A", "seq_len": n, "median_ms": n * scale, "run": run}
            for run, scale in (("run-a", 1.0), ("run-b", 50.0)) for n in (512, 1024, 2048)]
    claim = make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "seq_len"},
                       claimed={"about": 1.0}, tolerance=0.05)
    assert evaluate(claim, frame(rows), "cpu").values == pytest.approx([1.0, 1.0])


def test_across_runs_pairs_two_runs_on_the_same_hardware_only():
    """For sides no single install can hold (flash-attn 1.x and 2.x): A from one run, B from another."""
    rows = [{"label": "A", "seq_len": 128, "median_ms": 3.0, "run": "v1", "hardware": "GPU X"},
            {"label": "B", "seq_len": 128, "median_ms": 1.0, "run": "v2", "hardware": "GPU X"},
            {"label": "B", "seq_len": 128, "median_ms": 0.1, "run": "v2-elsewhere", "hardware": "GPU Y"}]
    across = make_claim(metric={"kind": "ratio", "numerator": "A", "denominator": "B", "match": ["seq_len"],
                                "across_runs": True})
    result = evaluate(across, frame(rows), "cpu")
    assert result.values == [3.0] and result.verdict == REPRODUCED
    assert result.points == ["seq_len=128, hardware=GPU X (runs v1 / v2)"]
    assert evaluate(make_claim(), frame(rows), "cpu").verdict == NOT_APPLICABLE  # within a run: nothing to pair
    alone = evaluate(across, frame(rows[1:]), "cpu")
    assert alone.verdict == NOT_APPLICABLE and alone.note.startswith("needs a run with A and one with B")
