"""compare: verdicts from raw samples, the CI gate's exit status, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import cli
from harness.compare import compare_records, parse_threshold
from harness.errors import UserError


def record(label: str, samples: list[float], status: str = "ok", seq_len: int = 64, reason: str = "",
           case_id: str | None = None) -> dict:
    """A hand-made record with the statistics a worker would compute from `samples` (ms)."""
    return {"case_id": case_id or f"{label}-{seq_len}", "label": label, "impl": label, "status": status,
            "reason": reason, "axes": ["seq_len"], "params": {"seq_len": seq_len},
            "metrics": {"median_ms": float(np.median(samples)) if samples else None,
                        "peak_extra_bytes": 1000.0 * seq_len},
            "samples_ms": list(samples)}


def noisy(center: float, n: int, seed: int, spread: float = 0.01) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(center * (1 + spread * rng.standard_normal(n)))


def verdict(base: dict, new: dict, metric: str = "median_ms") -> str:
    return compare_records([base], [new], metric).compared[0].verdict


def test_clearly_faster_and_slower_samples_get_those_verdicts():
    base = record("a", noisy(10.0, 20, seed=1))
    assert verdict(base, record("a", noisy(5.0, 20, seed=2))) == "faster"
    assert verdict(base, record("a", noisy(20.0, 20, seed=3))) == "slower"


def test_ratio_within_two_percent_is_same():
    assert verdict(record("a", noisy(10.0, 20, seed=1)), record("a", noisy(10.1, 20, seed=2))) == "same"


def test_overlapping_samples_with_many_reps_are_same():
    # medians 5% apart, but a 30% spread: no test can separate them
    base, new = record("a", noisy(10.0, 30, seed=4, spread=0.3)), record("a", noisy(10.5, 30, seed=5, spread=0.3))
    assert verdict(base, new) == "same"


def test_too_few_samples_is_unclear_even_when_far_apart():
    assert verdict(record("a", [10.0, 10.1, 10.2]), record("a", [20.0, 20.1, 20.2])) == "unclear"


def test_significant_test_with_overlapping_cis_is_unclear():
    # 20 evenly spaced samples shifted by 7 steps: the U test rejects (p ~ 0.002) while the
    # order-statistic CIs of the medians, [x(6), x(15)], still overlap
    base = list(10 + 0.1 * np.arange(20))
    b, n = record("a", base), record("a", [x + 0.7 for x in base])
    pair = compare_records([b], [n]).compared[0]
    assert pair.p_value is not None and pair.p_value < 0.01
    assert pair.verdict == "unclear"


def test_metric_without_samples_is_judged_by_ratio():
    base, new = record("a", noisy(10, 20, 1), seq_len=64), record("a", noisy(10, 20, 1), seq_len=64)
    new["metrics"]["peak_extra_bytes"] *= 2
    assert verdict(base, new, "peak_extra_bytes") == "worse"  # memory: better/worse, not faster/slower


def test_cases_not_ok_are_listed_never_compared():
    base = [record("a", noisy(10, 20, 1)), record("b", noisy(10, 20, 2))]
    new = [record("a", noisy(10, 20, 3)), record("b", [], status="wrong", reason="error 1e-1 above tolerance")]
    result = compare_records(base, new)
    assert {p.label for p in result.compared} == {"a"}
    (change,) = result.changes
    assert change.label == "b" and change.new == "wrong" and change.broke


def test_join_falls_back_to_label_and_params_when_ids_differ():
    base, new = record("a", noisy(10, 20, 1), case_id="old"), record("a", noisy(10, 20, 2), case_id="new")
    assert len(compare_records([base], [new], "median_ms").compared) == 1


def test_threshold_parsing():
    assert parse_threshold("10%") == pytest.approx(0.10)
    assert parse_threshold("2.5") == pytest.approx(0.025)
    for bad in ("ten%", "-5%", "", "10%%"):
        with pytest.raises(UserError):
            parse_threshold(bad)


def write_run(folder: Path, records: list[dict]) -> Path:
    folder.mkdir()
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture
def runs(tmp_path):
    base = write_run(tmp_path / "base", [record("a", noisy(10, 20, 1)), record("b", noisy(10, 20, 2))])
    slower = write_run(tmp_path / "slower", [record("a", noisy(10, 20, 3)), record("b", noisy(13, 20, 4))])
    return base, slower


def test_exit_status_is_one_only_for_a_clear_regression_above_the_threshold(runs, capsys):
    base, slower = runs
    assert cli.main(["compare", str(base), str(slower), "--fail-above", "10%"]) == 1
    assert "b [seq_len=64]" in capsys.readouterr().out
    assert cli.main(["compare", str(base), str(slower), "--fail-above", "50%"]) == 0
    assert cli.main(["compare", str(base), str(slower)]) == 0


def test_bad_input_exits_two(runs, tmp_path):
    base, slower = runs
    assert cli.main(["compare", str(base), str(tmp_path / "missing")]) == 2
    assert cli.main(["compare", str(base), str(slower), "--fail-above", "ten%"]) == 2
    other = write_run(tmp_path / "other", [record("z", noisy(10, 20, 1), seq_len=4096)])
    assert cli.main(["compare", str(base), str(other)]) == 2


def test_markdown_has_one_table_per_metric_with_one_row_per_case(runs, capsys):
    base, slower = runs
    cli.main(["compare", str(base), str(slower), "--markdown"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert "**median_ms** (lower is better)" in out and "**peak_extra_bytes** (lower is better)" in out
    assert len(rows) == 2 * 3  # two metrics: header + 2 cases each
    cli.main(["compare", str(base), str(slower), "--markdown", "--metric", "median_ms"])
    assert len([line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]) == 3


def with_rates(rec: dict, flops: float = 1e9) -> dict:
    """The rates a worker derives from the median: TFLOP/s = work / time."""
    rec["metrics"]["flops"] = flops
    rec["metrics"]["tflops"] = flops / (rec["metrics"]["median_ms"] / 1e3) / 1e12
    return rec


def test_higher_is_better_metrics_are_judged_in_their_own_direction(tmp_path, capsys):
    base = write_run(tmp_path / "base", [with_rates(record("a", noisy(10, 20, 1)))])
    faster = write_run(tmp_path / "faster", [with_rates(record("a", noisy(5, 20, 2)))])
    slower = write_run(tmp_path / "slower", [with_rates(record("a", noisy(20, 20, 3)))])
    pair = compare_records([with_rates(record("a", noisy(10, 20, 1)))],
                           [with_rates(record("a", noisy(5, 20, 2)))], "tflops").compared[0]
    assert pair.ratio == pytest.approx(2.0, rel=0.05) and pair.verdict == "faster"
    assert pair.p_value is not None  # judged from the samples, on the reciprocal scale
    assert cli.main(["compare", str(base), str(faster), "--metric", "tflops", "--fail-above", "10%"]) == 0
    assert cli.main(["compare", str(base), str(slower), "--metric", "tflops", "--fail-above", "10%"]) == 1
    assert "slower by more than 10% in tflops" in capsys.readouterr().out


def test_rates_derived_from_the_median_get_its_verdict_and_are_left_out_by_default():
    for center, seed in ((5, 2), (10.5, 3), (20, 4)):
        base, new = with_rates(record("a", noisy(10, 20, 1))), with_rates(record("a", noisy(center, 20, seed)))
        result = compare_records([base], [new], ["median_ms", "tflops"])
        time, rate = result.pairs("median_ms")[0], result.pairs("tflops")[0]
        assert time.verdict == rate.verdict and time.cost == pytest.approx(rate.cost, rel=0.05)
    default = compare_records([with_rates(record("a", noisy(10, 20, 1)))], [with_rates(record("a", noisy(10, 20, 2)))])
    assert default.metrics == ["median_ms", "peak_extra_bytes"]  # not tflops (nor flops, a count)


def test_quality_and_memory_are_judged_by_ratio_with_direction():
    base, new = record("a", noisy(10, 20, 1)), record("a", noisy(10, 20, 2))
    base["metrics"]["accuracy"], new["metrics"]["accuracy"] = 0.8, 0.6
    new["metrics"]["peak_extra_bytes"] /= 2
    result = compare_records([base], [new])
    assert result.pairs("accuracy")[0].verdict == "worse"
    assert result.pairs("peak_extra_bytes")[0].verdict == "better"
    assert [p.metric for p in result.regressions(0.1)] == ["accuracy"]  # 0.8 -> 0.6 costs 1.33x


def test_a_time_without_raw_samples_is_unclear_not_judged_by_a_bare_ratio():
    base, new = record("a", noisy(10, 20, 1)), record("a", noisy(10, 20, 2))
    base["metrics"]["first_call_ms"], new["metrics"]["first_call_ms"] = 100.0, 300.0
    pair = compare_records([base], [new]).pairs("first_call_ms")[0]
    assert pair.ratio == pytest.approx(3.0) and pair.verdict == "unclear"


def test_memory_regression_fails_the_gate(runs, tmp_path):
    base, _ = runs
    records = [record("a", noisy(10, 20, 5)), record("b", noisy(10, 20, 6))]
    records[1]["metrics"]["peak_extra_bytes"] *= 1.5
    more_memory = write_run(tmp_path / "more-memory", records)
    assert cli.main(["compare", str(base), str(more_memory), "--fail-above", "10%"]) == 1
    assert cli.main(["compare", str(base), str(more_memory), "--fail-above", "10%", "--metric", "median_ms"]) == 0


@pytest.mark.parametrize("status", ["wrong", "error", "oom", "timeout", "absent"])
def test_a_case_that_breaks_fails_the_gate(runs, tmp_path, status, capsys):
    base, _ = runs
    b = [] if status == "absent" else [record("b", [], status=status, reason="boom")]
    broken = write_run(tmp_path / f"broken-{status}", [record("a", noisy(10, 20, 3))] + b)
    assert cli.main(["compare", str(base), str(broken)]) == 0  # no gate without --fail-above
    assert cli.main(["compare", str(base), str(broken), "--fail-above", "10%"]) == 1
    out = capsys.readouterr().out
    assert "BROKE" in out and f"b [seq_len=64] ({status})" in out


def test_a_case_newly_skipped_is_reported_but_does_not_fail(runs, tmp_path, capsys):
    base, _ = runs
    skipped = write_run(tmp_path / "skipped", [record("a", noisy(10, 20, 3)),
                                               record("b", [], status="skipped", reason="needs cuda")])
    assert cli.main(["compare", str(base), str(skipped), "--fail-above", "10%"]) == 0
    assert "now skipped: b [seq_len=64] base ok, new skipped: needs cuda" in capsys.readouterr().out
    fixed = compare_records([record("b", [], status="error")], [record("b", noisy(10, 20, 1))])
    assert [c.kind for c in fixed.changes] == ["fixed"] and not fixed.broken()


def with_memory(record_: dict, extra_bytes: float, device: str = "cpu") -> dict:
    metrics = record_["metrics"] | {"peak_extra_bytes": extra_bytes, "peak_bytes": 4e8 + extra_bytes,
                                    "peak_ratio": extra_bytes / 1e6}
    return record_ | {"device": device, "metrics": metrics}


@pytest.mark.parametrize("base_bytes, new_bytes", [
    (65_536, 294_912),  # naive N=64 in two smoke runs of unchanged code: 4.5x, a few hundred KiB
    (1072 * 2**10, 2676 * 2**10),  # chunked N=2048: 1.6 MiB apart in six fresh runs
    (198.8 * 2**20, 201.4 * 2**20),  # sdpa_math N=2048 fwd_bwd: the widest in bytes
])
def test_cpu_memory_within_its_measured_noise_is_same_and_passes_the_gate(tmp_path, base_bytes, new_bytes):
    samples = noisy(10, 20, 1)
    base, new = with_memory(record("a", samples), base_bytes), with_memory(record("a", samples), new_bytes)
    assert verdict(base, new, "peak_extra_bytes") == "same"
    runs = [write_run(tmp_path / name, [r]) for name, r in (("base", base), ("new", new))]
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--fail-above", "10%"]) == 0


def test_cpu_memory_beyond_floor_and_band_is_worse_and_fails_the_gate(tmp_path):
    from harness.compare import MEMORY_BAND, MEMORY_FLOOR_BYTES

    samples = noisy(10, 20, 1)
    base_bytes = 100 * 2**20
    past_noise = base_bytes + MEMORY_FLOOR_BYTES + MEMORY_BAND * base_bytes + 2**20
    base, new = with_memory(record("a", samples), base_bytes), with_memory(record("a", samples), past_noise)
    assert verdict(base, new, "peak_extra_bytes") == "worse"
    assert verdict(new, base, "peak_extra_bytes") == "better"
    new = with_memory(record("a", samples), 1.2 * base_bytes)  # 20% more: past noise and past --fail-above 10%
    runs = [write_run(tmp_path / name, [r]) for name, r in (("base", base), ("new", new))]
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--fail-above", "10%"]) == 1


def test_gpu_allocator_memory_is_judged_by_the_ratio():
    samples = noisy(10, 20, 1)
    base, new = with_memory(record("a", samples), 2**20, "cuda"), with_memory(record("a", samples), 1.1 * 2**20, "cuda")
    assert verdict(base, new, "peak_extra_bytes") == "worse"  # the allocator's figure does not drift


def test_memory_noise_is_judged_once_not_again_as_peak_bytes_or_peak_ratio():
    samples = noisy(10, 20, 1)
    base, new = with_memory(record("a", samples), 1e6), with_memory(record("a", samples), 3e6)
    judged = compare_records([base], [new]).metrics
    assert "peak_extra_bytes" in judged and "peak_bytes" not in judged and "peak_ratio" not in judged
    assert compare_records([base], [new], "peak_ratio").compared[0].ratio == pytest.approx(3.0)  # still on request


def test_a_run_compared_with_itself_is_refused(runs, capsys):
    base, _ = runs
    assert cli.main(["compare", str(base), str(base) + "/"]) == 2
    err = capsys.readouterr().err.strip()
    assert "same run folder" in err and "\n" not in err


def test_a_difference_in_samples_flagged_noisy_is_unclear_and_cannot_fail_the_gate(tmp_path, capsys):
    base, new = record("a", noisy(10.0, 20, seed=1)), record("a", noisy(20.0, 20, seed=3))
    assert verdict(base, new) == "slower"
    new["metrics"]["noisy"] = True  # the harness itself said this timing cannot be trusted
    pair = compare_records([base], [new]).compared[0]
    assert pair.verdict == "unclear" and pair.why.endswith("but noisy in NEW")
    runs = [write_run(tmp_path / name, [r]) for name, r in (("base", base), ("new", new))]
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--fail-above", "10%"]) == 0
    assert "1 unclear (1 of them noisy or timed beside other processes: not judged)" in capsys.readouterr().out


def test_timings_taken_beside_other_processes_are_not_judged():
    base, new = record("a", noisy(10.0, 20, seed=1)), record("a", noisy(20.0, 20, seed=3))
    base["metrics"]["other_processes"] = 1.0  # another job shared the CPU while BASE was timed
    pair = compare_records([base], [new]).compared[0]
    assert pair.verdict == "unclear" and pair.why.endswith("but timed beside other processes in BASE")
    assert "other_processes" not in compare_records([base], [new]).metrics  # described, not judged
