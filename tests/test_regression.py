"""The regression mechanism: baselines from repeated runs, tolerances, and the gate."""
from __future__ import annotations

import pytest

from harness import regression
from harness.errors import UserError


def test_tolerance_is_three_spreads_but_never_below_the_floor():
    runs = [{"steady": 10.0, "jumpy": 10.0}, {"steady": 10.1, "jumpy": 14.0}, {"steady": 9.9, "jumpy": 12.0}]
    cases = regression.baseline_from_runs(runs, {"env_id": "x"})["cases"]
    assert cases["steady"]["normalized"] == pytest.approx(10.0)
    assert cases["steady"]["tolerance"] == regression.TOLERANCE_FLOOR  # spread 2% -> floor
    assert cases["jumpy"]["normalized"] == pytest.approx(12.0)
    assert cases["jumpy"]["tolerance"] == pytest.approx(3 * 4.0 / 12.0)


def test_only_slowdowns_beyond_tolerance_are_regressions():
    baseline = {"cases": {"a": {"normalized": 10.0, "tolerance": 0.25}, "b": {"normalized": 10.0, "tolerance": 0.25}}}
    found = regression.regressions(baseline, {"a": 12.4, "b": 12.6, "new_case": 99.0})
    assert len(found) == 1 and found[0].startswith("b:")
    assert regression.regressions(baseline, {"a": 2.0}) == []  # faster never fails


def test_build_case_rejects_unknown_parameters():
    with pytest.raises(UserError, match="seq_lenn"):
        regression.build_case("attention", "naive", seq_lenn=64)


def test_wrong_impl_is_refused_before_timing(monkeypatch):
    case = regression.build_case("attention", "naive", seq_len=32, heads=2, head_dim=8)
    impl = regression.registry.get("attention", "naive")
    wrong = impl.__class__(**{**impl.__dict__, "fn": lambda q, k, v, **kw: impl.fn(q, k, v, **kw) * 2})
    monkeypatch.setitem(regression.registry._REGISTRY["attention"], "naive", wrong)
    with pytest.raises(regression.WrongResult):
        regression.prepare(case)


class FakeBenchmark:
    """Stands in for pytest-benchmark's fixture: records what it was asked to time."""

    def __init__(self):
        self.extra_info, self.timed = {}, []

    def __call__(self, fn):
        self.timed.append(fn)
        return fn()


def test_plugin_times_a_correct_impl_and_fails_a_wrong_one_untimed(monkeypatch):
    from harness.pytest_plugin import bench_case

    bench = FakeBenchmark()
    errors = bench_case(bench, "attention", "naive", seq_len=32, heads=2, head_dim=8)
    assert errors["within_tolerance"] == 1.0 and len(bench.timed) == 1 and bench.extra_info["impl"] == "naive"
    impl = regression.registry.get("attention", "naive")
    wrong = impl.__class__(**{**impl.__dict__, "fn": lambda q, k, v, **kw: impl.fn(q, k, v, **kw) + 1})
    monkeypatch.setitem(regression.registry._REGISTRY["attention"], "naive", wrong)
    bench = FakeBenchmark()
    with pytest.raises(pytest.fail.Exception, match="wrong result"):
        bench_case(bench, "attention", "naive", seq_len=32, heads=2, head_dim=8)
    assert bench.timed == []


def test_a_slowdown_counts_only_if_it_persists_when_measured_again(monkeypatch):
    baseline = {"cases": {"noisy": {"normalized": 10.0, "tolerance": 0.25},
                          "slow": {"normalized": 10.0, "tolerance": 0.25}}}
    cases = [regression.BenchCase("noisy", "attention", "naive"), regression.BenchCase("slow", "attention", "naive")]
    readings = {"noisy": iter([20.0, 10.5]), "slow": iter([20.0, 19.0, 18.0])}
    asked = []

    def fake_times(benches, rounds):
        asked.append([b.name for b in benches])
        return {b.name: next(readings[b.name]) for b in benches}

    monkeypatch.setattr(regression, "normalized_times", fake_times)
    found, measured = regression.confirmed_regressions(baseline, cases, retries=2)
    assert [line.split(":")[0] for line in found] == ["slow"]
    assert asked == [["noisy", "slow"], ["noisy", "slow"], ["slow"]]  # a case that recovered is not re-run
    assert measured == {"noisy": 10.5, "slow": 18.0}


def test_fastest_sample_is_taken_from_interleaved_rounds():
    calls = []
    fastest = regression.interleaved_fastest({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                             rounds=2)
    assert set(fastest) == {"a", "b"} and all(v > 0 for v in fastest.values())
    assert calls[:2] == ["a", "b"]  # both warmed up before any timing


def test_a_speed_check_is_measured_again_and_fails_only_when_every_attempt_fails():
    readings = iter([3.0, 1.0, 9.0])
    assert regression.remeasured(lambda: next(readings), lambda x: x < 2) == 1.0  # recovered: not measured a third time
    assert next(readings) == 9.0
    always = iter([5.0, 4.0, 3.0, 0.0])
    assert regression.remeasured(lambda: next(always), lambda x: x < 2, attempts=3) == 3.0  # last of three


def test_a_stored_baseline_is_not_judged_on_a_loaded_machine(monkeypatch):
    monkeypatch.setattr(regression.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(regression.os, "getloadavg", lambda: (6.5, 6.0, 5.0))
    assert "loaded (6.5 runnable on 2 cores)" in regression.too_loaded_for_a_stored_baseline()
    monkeypatch.setattr(regression.os, "getloadavg", lambda: (2.2, 2.0, 2.0))  # pytest and one busy loop
    assert regression.too_loaded_for_a_stored_baseline() is None
