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
    assert verdict(base, new, "peak_extra_bytes") == "slower"


def test_cases_not_ok_are_listed_never_compared():
    base = [record("a", noisy(10, 20, 1)), record("b", noisy(10, 20, 2))]
    new = [record("a", noisy(10, 20, 3)), record("b", [], status="wrong", reason="error 1e-1 above tolerance")]
    result = compare_records(base, new)
    assert [p.label for p in result.compared] == ["a"]
    assert result.not_ok[0]["label"] == "b" and result.not_ok[0]["new"] == "wrong"


def test_join_falls_back_to_label_and_params_when_ids_differ():
    base, new = record("a", noisy(10, 20, 1), case_id="old"), record("a", noisy(10, 20, 2), case_id="new")
    assert len(compare_records([base], [new]).compared) == 1


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


def test_markdown_table_has_one_row_per_compared_case(runs, capsys):
    base, slower = runs
    cli.main(["compare", str(base), str(slower), "--markdown"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 3  # header + 2 cases
