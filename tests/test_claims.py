"""Claim verdicts from hand-made records: every verdict is reachable, fits never pool conditions,
and each verdict says where it was measured and how far it carries."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.claims import model
from harness.claims.carries import how_far
from harness.claims.evaluate import NOT_APPLICABLE, NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, evaluate
from harness.claims.model import Claim
from harness.claims.present import measured_where


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
    assert evaluate(make_claim(), data, "cpu").verdict == NOT_MEASURED


def test_no_data_is_not_measured_with_the_command_that_measures_it():
    result = evaluate(make_claim(), frame([]), "cpu")
    assert result.verdict == NOT_MEASURED
    assert "--run-missing" in result.note and "suites/smoke.yaml" in result.note


def test_failed_cases_are_named_as_why_nothing_was_measured():
    data = timings({128: 3.0})
    data.loc[data["label"] == "A", "status"] = "oom"
    assert evaluate(make_claim(), data, "cpu").note.startswith("the runs' A cases ended 1 oom")


def test_gpu_claim_is_not_applicable_on_cpu_records():
    result = evaluate(make_claim(needs={"device": "cuda"}), timings({128: 3.0}), "cpu")
    assert result.verdict == NOT_APPLICABLE and "CUDA" in result.note


def test_gpu_claim_judged_from_gpu_records_anywhere():
    data = timings({128: 3.0})
    data["device"] = "cuda"
    assert evaluate(make_claim(needs={"device": "cuda"}), data, "cpu").verdict == REPRODUCED


def test_gpu_claim_without_records_is_not_applicable_here_not_unmeasured():
    result = evaluate(make_claim(needs={"device": "cuda"}), frame([]), "cpu")
    assert result.verdict == NOT_APPLICABLE and result.note == "needs a CUDA GPU"


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
    assert evaluate(claim, frame(rows), "cpu").verdict == NOT_MEASURED


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


def test_a_column_no_run_has_is_not_measured():
    claim = make_claim(metric={"kind": "column", "numerator": "A", "column": "ppl_ratio_4x"}, claimed={"at_most": 1})
    assert evaluate(claim, timings({128: 3.0}), "cpu").verdict == NOT_MEASURED


def test_a_missing_column_is_named_as_the_reason():
    claim = make_claim(metric={"kind": "column", "numerator": "A", "column": "pct_peak_flops"}, claimed={"at_least": 50})
    note = evaluate(claim, timings({128: 3.0}), "cpu").note
    assert note.startswith("the runs' records have no pct_peak_flops column (a percent of peak: run "
                           "`python -m harness calibrate` first)")


def test_an_axis_no_run_has_is_not_measured():
    claim = make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "new_tokens"}, claimed={"about": 1})
    assert evaluate(claim, timings({128: 3.0, 256: 4.0, 512: 5.0}), "cpu").verdict == NOT_MEASURED


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
    assert result.points == ["seq_len=128, hardware=GPU X"] and result.runs == ["v1 / v2"]
    assert evaluate(make_claim(), frame(rows), "cpu").verdict == NOT_MEASURED  # within a run: nothing to pair
    alone = evaluate(across, frame(rows[1:]), "cpu")
    assert alone.verdict == NOT_MEASURED and alone.note.startswith("needs a run with A and one with B")


def power_law(exponents: dict[bool, float], sizes=(1024, 2048, 4096), **extra):
    """Records of A over seq_len with a different exponent per causal value, swept together."""
    return frame([{"label": "A", "seq_len": n, "causal": causal, "median_ms": 1e-3 * n ** e,
                   "axes": ["seq_len", "causal"], "run": "r", **extra}
                  for causal, e in exponents.items() for n in sizes])


def exponent_claim(**metric) -> Claim:
    return make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "seq_len", **metric},
                      claimed={"about": 2.0}, tolerance=0.05)


def test_exponent_fits_each_combination_of_the_other_swept_axes():
    result = evaluate(exponent_claim(), power_law({False: 2.0, True: 1.0}), "cpu")
    assert sorted(result.values) == pytest.approx([1.0, 2.0])  # pooled, the fit would read about 1.5
    assert sorted(result.points) == ["seq_len 1024..4096 (causal=False)", "seq_len 1024..4096 (causal=True)"]
    assert result.verdict == PARTLY


def test_where_pins_the_conditions_an_exponent_is_fitted_at():
    result = evaluate(exponent_claim(where="causal == False"), power_law({False: 2.0, True: 1.0}), "cpu")
    assert result.values == pytest.approx([2.0]) and result.verdict == REPRODUCED


def test_an_axis_zipped_to_the_fitted_one_is_not_a_condition():
    rows = [{"label": "A", "seq_len": n, "batch": 4096 // n, "median_ms": 1e-3 * n ** 2,
             "axes": ["seq_len", "batch"], "run": "r"} for n in (256, 512, 1024)]
    result = evaluate(exponent_claim(), frame(rows), "cpu")
    assert result.values == pytest.approx([2.0]) and result.points == ["seq_len 256..1024"]


def test_a_column_claim_says_where_each_value_was_measured():
    rows = [{"label": "T", "policy": "paged", "rate": r, "kv_waste": 0.02, "axes": ["policy", "rate"],
             "run": "serving-1"} for r in (4, 16)]
    claim = make_claim(metric={"kind": "column", "numerator": "T", "column": "kv_waste"}, claimed={"at_most": 0.04})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.points == ["policy=paged, rate=4", "policy=paged, rate=16"]
    assert measured_where(result) == "0.02 at policy=paged, rate=4; 0.02 at policy=paged, rate=16 (run serving-1)"
    assert measured_where(result, limit=1) == "0.02 at policy=paged, rate=4; (+1 more) (run serving-1)"


def test_shown_columns_come_with_each_value():
    rows = [{"label": "F", "seq_len": n, "pct_peak_flops": p, "tflops": t, "axes": ["seq_len"]}
            for n, p, t in ((512, 40.0, 150.0), (4096, 60.0, 230.0))]
    claim = make_claim(metric={"kind": "column", "numerator": "F", "column": "pct_peak_flops", "aggregate": "max",
                               "show": ["tflops"]}, claimed={"at_least": 50.0})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.values == [60.0] and result.points == ["seq_len=4096 (tflops=230)"]


def hardware_note(claim: Claim, hardware: str, device: str = "cuda") -> str:
    data = timings({128: 3.0}).assign(run="r", hardware=hardware, device=device)
    return how_far(evaluate(claim, data, "cpu"))


def test_the_hardware_note_follows_the_runs_hardware():
    a100 = make_claim(hardware="A100", carries="the shapes matter")
    same = hardware_note(a100, "NVIDIA A100-SXM4-80GB")
    assert same.startswith("same hardware as the source (A100): absolute figures are comparable")
    assert same.endswith("; the shapes matter")
    other = hardware_note(a100, "NVIDIA H200")
    assert "measured on NVIDIA H200, the source on A100: the ratio carries" in other
    assert "(a CPU)" in hardware_note(a100, "AMD EPYC", device="cpu")
    assert hardware_note(make_claim(), "AMD EPYC", device="cpu") == "does not depend on the hardware"
    assert how_far(evaluate(a100, frame([]), "cpu")).startswith("the source measured on A100")


def test_a_fraction_of_peak_is_compared_as_a_fraction_of_each_devices_peak():
    claim = make_claim(hardware="A100", metric={"kind": "column", "numerator": "A", "column": "pct_peak_flops"},
                       claimed={"at_least": 50.0})
    data = frame([{"label": "A", "seq_len": 1, "pct_peak_flops": 60.0, "run": "r", "hardware": "NVIDIA H200"}])
    note = how_far(evaluate(claim, data, "cpu"))
    assert "fraction of its own measured peak with the source's fraction of the A100's" in note
