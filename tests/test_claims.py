"""Claim verdicts from hand-made records: each value carries a 95% interval from its raw
samples, a verdict is decided by the intervals (reproduced, not reproduced, partly,
inconclusive with what would settle it), fits never pool conditions, and each verdict says
where it was measured and how far it carries."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.claims import model
from harness.claims.carries import how_far
from harness.claims.evaluate import (INCONCLUSIVE, NOT_APPLICABLE, NOT_MEASURED, NOT_REPRODUCED, PARTLY,
                                     REPRODUCED, evaluate)
from harness.claims.model import Claim
from harness.claims.points import expected_speedup
from harness.claims.interval import Draws
from harness.claims.present import measured, measured_where


def make_claim(**change) -> Claim:
    spec = {"id": "fast", "claim": "B is 2-4x faster than A", "source": "a paper", "locator": "Table 1",
            "published": "2-4x", "conditions": "GPU X, fp16", "suite": "suites/smoke.yaml", "scaling": "as published",
            "band_reason": "the paper's range",
            "metric": {"kind": "ratio", "numerator": "A", "denominator": "B", "match": ["seq_len"]},
            "claimed": {"at_least": 2.0, "at_most": 4.0}}
    spec.update(change)
    return Claim.model_validate(spec)


def frame(rows):
    return pd.DataFrame([{"status": "ok", "device": "cpu", **r} for r in rows])


def samples(center: float, spread: float, n: int = 20, seed: int = 0) -> list[float]:
    """n timing samples around `center`, +-spread (relative), seeded."""
    rng = np.random.default_rng(seed)
    return list(center * (1 + spread * rng.uniform(-1, 1, n)))


def timed(label: str, n: int, center: float, spread: float = 0.01, **extra) -> dict:
    data = samples(center, spread, seed=n + len(label))
    return {"label": label, "seq_len": n, "median_ms": float(np.median(data)), "samples_ms": data, **extra}


def timings(a_over_b: dict[int, float], spread: float = 0.01):
    rows = []
    for n, ratio in a_over_b.items():
        rows += [timed("A", n, ratio, spread), timed("B", n, 1.0, spread)]
    return frame(rows)


@pytest.mark.parametrize("ratios, verdict", [
    ({128: 2.5, 256: 3.5}, REPRODUCED),
    ({128: 1.2, 256: 3.0}, PARTLY),
    ({128: 1.1, 256: 5.0}, NOT_REPRODUCED),
])
def test_tight_intervals_decide_every_point(ratios, verdict):
    result = evaluate(make_claim(), timings(ratios), "cpu")
    assert result.verdict == verdict
    assert sorted(result.values) == pytest.approx(sorted(ratios.values()), rel=0.02)
    assert all(p.estimate.has_interval for p in result.points)


def test_an_interval_straddling_the_band_is_inconclusive_and_says_what_would_settle_it():
    result = evaluate(make_claim(), timings({128: 2.02}, spread=0.3), "cpu")
    assert result.verdict == INCONCLUSIVE
    point = result.points[0]
    assert point.estimate.low < 2.0 < point.estimate.high
    assert "straddles the band 2–4" in result.note and "more samples or a quieter machine" in result.note


def test_one_point_inside_and_one_undecided_is_not_reproduced_yet_but_inconclusive():
    data = pd.concat([timings({128: 3.0}), timings({256: 2.02}, spread=0.3)], ignore_index=True)
    assert evaluate(make_claim(), data, "cpu").verdict == INCONCLUSIVE


def test_a_value_without_raw_samples_has_no_interval_and_is_inconclusive():
    rows = [{"label": "A", "seq_len": 1, "per_token_ms_mean": 3.0}, {"label": "B", "seq_len": 1, "per_token_ms_mean": 1.0}]
    claim = make_claim(metric={"kind": "ratio", "column": "per_token_ms_mean", "numerator": "A", "denominator": "B",
                               "match": ["seq_len"]})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == INCONCLUSIVE and result.values == [3.0]
    assert "no raw samples" in result.note


def test_a_count_is_exact_so_its_interval_is_the_value():
    rows = [{"label": "T", "kv_heads": h, "seq_len": 1, "cache_bytes_final": 4096.0 * h} for h in (4, 1)]
    claim = make_claim(metric={"kind": "ratio", "column": "cache_bytes_final", "numerator": "T",
                               "numerator_where": "kv_heads == 4", "denominator_where": "kv_heads == 1",
                               "match": ["seq_len"]}, claimed={"about": 4.0})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == REPRODUCED and result.points[0].estimate.low == pytest.approx(4.0)


def test_memory_gets_an_interval_from_repeated_passes_only():
    passes = {"A": [1000.0, 1010.0, 990.0], "B": [100.0, 101.0, 99.0]}
    rows = [{"label": k, "seq_len": 1, "peak_extra_bytes": float(np.median(v)), "memory_samples_bytes": v}
            for k, v in passes.items()]
    claim = make_claim(metric={"kind": "ratio", "column": "peak_extra_bytes", "numerator": "A", "denominator": "B",
                               "match": ["seq_len"]}, claimed={"about": 10.0}, tolerance=0.1)
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == REPRODUCED and "3 memory passes" in result.points[0].estimate.how
    one_pass = frame([{**r, "memory_samples_bytes": None} for r in rows])
    assert evaluate(claim, one_pass, "cpu").verdict == INCONCLUSIVE


def test_a_band_per_condition_judges_each_point_against_its_own_value():
    claim = make_claim(claimed=None, claimed_at={"axis": "seq_len", "values": {128: {"about": 1.5}, 256: {"about": 5.0}}},
                       tolerance=0.05)
    result = evaluate(claim, timings({128: 1.5, 256: 3.0, 512: 9.0}), "cpu")
    assert [p.outcome for p in result.points] == ["holds", "fails"]  # 512 has no published value: not judged
    assert result.verdict == PARTLY


def test_a_fallback_kernel_is_not_measured_with_the_path_that_ran():
    rows = [timed("F", 1, 3.0), timed("Q", 1, 1.0, int8_kernel="dequantize")]
    claim = make_claim(metric={"kind": "ratio", "numerator": "F", "denominator": "Q", "match": ["seq_len"],
                               "kernel": {"column": "int8_kernel", "accept": ["x86", "int_mm"]}})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == NOT_MEASURED and "only the dequantize path ran (int8_kernel)" in result.note
    rows[1]["int8_kernel"] = "x86"
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == REPRODUCED and result.points[0].kernel == "x86"


def test_repeats_pool_into_one_point_resampled_over_them():
    rows = [timed("A", 1, 3.0 + 0.1 * s, seed=s) | {"seed": s} for s in range(3)]
    rows += [timed("B", 1, 1.0) | {"seed": s} for s in range(3)]
    claim = make_claim(metric={"kind": "ratio", "numerator": "A", "denominator": "B", "match": ["seq_len", "seed"],
                               "repeats": "seed"})
    result = evaluate(claim, frame(rows), "cpu")
    assert len(result.points) == 1 and result.points[0].estimate.how == "3 repeats (seeds)"
    assert result.values[0] == pytest.approx(3.1, rel=0.02)


def test_leviathan_expected_speedup_is_theorem_3_8():
    cost = Draws(0.1, None, "given", exact=True)
    alpha, k = 0.8, 4
    assert expected_speedup(alpha, k, cost).value == pytest.approx((1 - 0.8 ** 5) / (0.2 * 1.4))
    assert expected_speedup(1.0, k, cost).value == pytest.approx(5 / 1.4)


def speculative_rows():
    common = {"prompt_len": 8, "new_tokens": 16, "batch": 1}
    return frame([timed("T", 0, 10.0, strategy="greedy", temperature=0, k=4, **common),
                  timed("D", 0, 1.0, strategy="greedy", temperature=0, k=4, **common),
                  timed("T", 0, 4.0, strategy="speculative", temperature=0, k=4, alpha=0.8, axes=["strategy", "k"],
                        **common),
                  timed("T", 0, 5.0, strategy="speculative", temperature=0, k=2, alpha=0.8, axes=["strategy", "k"],
                        **common)])


def test_a_speculative_speedup_shows_theorem_3_8_and_the_agreement_is_a_claim():
    metric = {"kind": "ratio", "numerator": "T", "numerator_where": "strategy == greedy", "denominator": "T",
              "denominator_where": "strategy == speculative", "match": ["prompt_len", "new_tokens", "batch"],
              "expected": {"target": "T", "target_where": "strategy == greedy", "draft": "D"}}
    speedup = evaluate(make_claim(metric=metric), speculative_rows(), "cpu")
    expected = (1 - 0.8 ** 5) / (0.2 * (4 * 0.1 + 1))
    assert speedup.values[0] == pytest.approx(2.5, rel=0.02)
    assert f"Thm 3.8 expects {expected:.3g}" in speedup.points[0].shown
    assert [p.where.split(", ")[-1] for p in speedup.points] == ["k=4", "k=2"]  # each draft length its own point
    agreement = evaluate(make_claim(metric={**metric, "kind": "leviathan"}, claimed={"about": 1.0}, tolerance=0.5),
                         speculative_rows(), "cpu")
    assert agreement.values[0] == pytest.approx(2.5 / expected, rel=0.02)


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


def test_gpu_claim_is_not_applicable_on_cpu_records_and_judged_from_gpu_records_anywhere():
    claim = make_claim(needs={"device": "cuda"})
    result = evaluate(claim, timings({128: 3.0}), "cpu")
    assert result.verdict == NOT_APPLICABLE and result.note == "needs a CUDA GPU"
    data = timings({128: 3.0})
    data["device"] = "cuda"
    assert evaluate(claim, data, "cpu").verdict == REPRODUCED


def test_missing_library_is_the_reason():
    result = evaluate(make_claim(needs={"modules": ["surely_not_installed_xyz"]}), frame([]), "cpu")
    assert result.verdict == NOT_APPLICABLE and "surely_not_installed_xyz" in result.note


def power_law(exponents: dict[bool, float], sizes=(1024, 2048, 4096, 8192), spread: float = 0.01):
    """Records of A over seq_len with a different exponent per causal value, swept together."""
    return frame([{**timed("A", n, 1e-3 * n ** e, spread), "causal": causal, "axes": ["seq_len", "causal"], "run": "r"}
                  for causal, e in exponents.items() for n in sizes])


def exponent_claim(**metric) -> Claim:
    return make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "seq_len", **metric},
                      claimed={"about": 2.0}, tolerance=0.05)


def test_exponent_fits_each_combination_of_the_other_swept_axes_with_an_interval():
    result = evaluate(exponent_claim(), power_law({False: 2.0, True: 1.0}), "cpu")
    assert sorted(result.values) == pytest.approx([1.0, 2.0], abs=0.02)  # pooled, the fit would read about 1.5
    assert sorted(result.points, key=lambda p: p.where)[0].where == "seq_len 1024..8192 (causal=False)"
    assert result.verdict == PARTLY
    assert all(p.estimate.high - p.estimate.low < 0.1 for p in result.points)


def test_a_noisy_fit_is_inconclusive():
    result = evaluate(exponent_claim(where="causal == False"), power_law({False: 2.05}, spread=0.6), "cpu")
    assert result.verdict == INCONCLUSIVE and "more points or larger sizes" in result.note


def test_exponent_needs_three_sizes():
    rows = [timed("A", n, n / 100) for n in (512, 1024)]
    claim = make_claim(metric={"kind": "exponent", "numerator": "A", "axis": "seq_len"}, claimed={"about": 1.0})
    assert evaluate(claim, frame(rows), "cpu").verdict == NOT_MEASURED


def test_two_runs_with_the_same_sweep_values_are_never_mixed():
    first, second = timings({128: 3.0}), timings({128: 1.0})
    first["run"], second["run"] = "run-a", "run-b"
    result = evaluate(make_claim(), pd.concat([first, second], ignore_index=True), "cpu")
    assert sorted(result.values) == pytest.approx([1.0, 3.0], rel=0.02) and result.verdict == PARTLY


def test_across_runs_pairs_two_runs_on_the_same_hardware_only():
    rows = [timed("A", 128, 3.0, run="v1", hardware="GPU X"), timed("B", 128, 1.0, run="v2", hardware="GPU X"),
            timed("B", 128, 0.1, run="v2-elsewhere", hardware="GPU Y")]
    across = make_claim(metric={"kind": "ratio", "numerator": "A", "denominator": "B", "match": ["seq_len"],
                                "across_runs": True})
    result = evaluate(across, frame(rows), "cpu")
    assert result.values == pytest.approx([3.0], rel=0.02) and result.verdict == REPRODUCED
    assert result.points[0].where == "seq_len=128, hardware=GPU X" and result.runs == ["v1 / v2"]
    alone = evaluate(across, frame(rows[1:]), "cpu")
    assert alone.verdict == NOT_MEASURED and "needs a run with A and one with B" in alone.note


def test_the_best_point_alone_is_judged_where_the_claim_is_about_a_best_point():
    rows = [{**timed("F", n, 1.0), "pct_peak_flops": p, "tflops": p * 3} for n, p in ((512, 40.0), (4096, 74.0))]
    claim = make_claim(metric={"kind": "column", "column": "pct_peak_flops", "numerator": "F", "best": True,
                               "show": ["tflops"]}, claimed={"at_least": 72.0, "at_most": 78.0})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.values == pytest.approx([74.0], rel=0.02) and "tflops=222" in result.points[0].shown


def test_the_measured_text_gives_each_value_its_interval_outcome_and_run():
    data = timings({128: 3.0}).assign(run="serving-1")
    text = measured(evaluate(make_claim(), data, "cpu"))
    assert text.startswith("3 [") and "at seq_len=128 → holds" in text and "Interval from 20 timing samples" in text
    assert measured_where(evaluate(make_claim(), data, "cpu")).startswith("serving-1")


def hardware_note(claim: Claim, hardware: str, device: str = "cuda") -> str:
    data = timings({128: 3.0}).assign(run="r", hardware=hardware, device=device)
    return how_far(evaluate(claim, data, "cpu"))


def test_the_hardware_note_follows_the_runs_hardware():
    a100 = make_claim(hardware="A100", carries="the shapes matter")
    same = hardware_note(a100, "NVIDIA A100-SXM4-80GB")
    assert same.startswith("same hardware as the source (A100): absolute figures are comparable")
    assert same.endswith("; the shapes matter")
    assert "measured on NVIDIA H200, the source on A100: the ratio carries" in hardware_note(a100, "NVIDIA H200")
    assert "(a CPU)" in hardware_note(a100, "AMD EPYC", device="cpu")
    assert hardware_note(make_claim(), "AMD EPYC", device="cpu") == "does not depend on the hardware"


def test_a_claim_needs_one_published_value_and_a_band_reason():
    with pytest.raises(ValueError, match="claimed or claimed_at"):
        make_claim(claimed_at={"axis": "seq_len", "values": {1: {"about": 1.0}}})
    spec = make_claim().model_dump(exclude_none=True)
    del spec["band_reason"]
    with pytest.raises(ValueError, match="band_reason"):
        model.Claim.model_validate(spec)


def test_controls_are_shown_beside_each_value_and_not_judged():
    rows = [timed("T", 1, value, positional=p) for p, value in (("alibi", 1.0), ("sinusoidal", 3.0), ("none", 2.0))]
    claim = make_claim(metric={"kind": "ratio", "numerator": "T", "numerator_where": "positional == sinusoidal",
                               "denominator_where": "positional == alibi", "match": ["seq_len"],
                               "controls": ["positional == 'none'"], "control_side": "denominator"})
    result = evaluate(claim, frame(rows), "cpu")
    assert result.verdict == REPRODUCED and len(result.points) == 1
    assert "control positional == 'none': 1.5" in result.points[0].shown
