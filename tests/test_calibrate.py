"""Calibration: measured ceilings are stored per env id, read back, and turn a
case's rates into percent of peak."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness import worker
from harness.measure import calibrate, ceilings as stored
from harness.record import Record


def test_tiny_calibration_measures_every_precision_and_copy_and_read_bandwidth():
    ceilings, measured = calibrate.measure_ceilings("cpu", sizes=(32,), copy_bytes=1 << 16, read_bytes=1 << 16)
    assert set(ceilings["flops"]) == {"fp32", "fp16", "bf16", "int8"}  # torch._int_mm runs on the CPU
    assert all(rate > 0 for rate in ceilings["flops"].values()) and ceilings["bytes_per_s"] > 0
    matmul = next(m for m in measured if m.kind == "matmul" and m.precision == "fp32")
    assert matmul.rate == pytest.approx(2 * 32 ** 3 / (matmul.median_ms / 1e3))
    read = next(m for m in measured if m.kind == "read")
    assert ceilings["read_bytes_per_s"] == read.rate == pytest.approx((1 << 16) / (read.median_ms / 1e3))


def test_read_bandwidth_is_measured_with_the_threads_asked_for(monkeypatch):
    seen = []

    def measure(fn, device, settings, call_s):
        seen.append(settings)
        return [1.0]

    monkeypatch.setattr(calibrate.timer, "measure", measure)
    calibrate.read_rate(1 << 12, "cpu", threads=1)
    assert [s.threads for s in seen] == [1]
    assert calibrate.READ_THREADS["cpu"] == 1  # a batch-1 decode step on one core reads with one thread


def test_ceilings_are_saved_and_loaded_by_env_id(tmp_path):
    env = {"env_id": "abc123", "device": "cpu"}
    ceilings = {"flops": {"fp32": 1e11}, "bytes_per_s": 2e10}
    path = calibrate.save(env, ceilings, [], tmp_path)
    assert path.name == "calibration-abc123.json"
    assert stored.load_ceilings("abc123", tmp_path) == ceilings
    assert stored.load_ceilings("other", tmp_path) is None


def test_rates_report_percent_of_the_calibrated_peak():
    metrics = {"flops": 4e9, "bytes_moved": 1e8}  # at 2 ms: 2 TFLOP/s, 50 GB/s
    ceilings = {"flops": {"fp16": 8e12, "fp32": 1e12}, "bytes_per_s": 1e11}
    rates = worker._rates(metrics, 2.0, "fp16", ceilings)
    assert rates["pct_peak_flops"] == pytest.approx(25.0)
    assert rates["pct_peak_bandwidth"] == pytest.approx(50.0)
    assert "pct_peak_flops" not in worker._rates(metrics, 2.0, "int8", ceilings)  # int8 never calibrated
    assert "pct_peak_bandwidth" not in worker._rates(metrics, 2.0)  # no calibration: no column


def test_each_ceiling_is_the_best_rate_over_the_sizes(monkeypatch):
    monkeypatch.setattr(calibrate, "MAX_CALL_S", 60.0)
    monkeypatch.setattr(calibrate, "SETTINGS", replace(calibrate.SETTINGS, max_time_s=0.02))
    ceilings, measured = calibrate.measure_ceilings("cpu", sizes=(16, 48, 32), copy_bytes=1 << 16,
                                                    read_bytes=1 << 16)
    for precision, best in ceilings["flops"].items():
        rates = [m.rate for m in measured if m.kind == "matmul" and m.precision == precision]
        assert len(rates) == 3 and best == max(rates)


def test_larger_sizes_stop_once_one_call_would_take_too_long(monkeypatch):
    """A size is measured only while its call (n^3 from the last size) stays under MAX_CALL_S."""
    monkeypatch.setattr(calibrate, "MAX_CALL_S", 0.0)  # any prediction is too long: only the first size
    _, measured = calibrate.measure_ceilings("cpu", sizes=(64, 16), copy_bytes=1 << 16, read_bytes=1 << 16)
    assert {m.size for m in measured if m.kind == "matmul"} == {16}
    assert calibrate.MATMUL_SIZES["cpu"][0] == 256 and calibrate.MATMUL_SIZES["cpu"][-1] >= 2048


def test_calibration_is_found_in_the_fixed_place_whatever_the_run_folder(tmp_path, monkeypatch):
    fixed, out = tmp_path / "fixed", tmp_path / "elsewhere"
    monkeypatch.setenv("SEQBENCH_CALIBRATION", str(fixed))
    assert stored.default_folder() == fixed
    calibrate.save({"env_id": "e2"}, {"flops": {"fp32": 1.0}, "bytes_per_s": 2.0}, [])
    assert (fixed / "calibration-e2.json").exists()
    folders = stored.search_folders(out)
    assert folders == [out, fixed]
    assert stored.find_ceilings("e2", folders)["bytes_per_s"] == 2.0
    calibrate.save({"env_id": "e2"}, {"flops": {}, "bytes_per_s": 3.0}, [], out)  # the run's own comes first
    assert stored.find_ceilings("e2", folders)["bytes_per_s"] == 3.0
    monkeypatch.delenv("SEQBENCH_CALIBRATION")
    assert stored.default_folder() == Path(__file__).resolve().parents[1] / "results"


def test_calibrate_command_writes_ceilings_for_this_env(tmp_path, monkeypatch):
    from harness import cli, env

    monkeypatch.setitem(calibrate.MATMUL_SIZES, "cpu", (16,))  # tiny: the command, not the numbers
    monkeypatch.setitem(calibrate.COPY_BYTES, "cpu", 1 << 14)
    monkeypatch.setitem(calibrate.READ_BYTES, "cpu", 1 << 14)
    assert cli.main(["calibrate", "--device", "cpu", "--out", str(tmp_path)]) == 0
    ceilings = stored.load_ceilings(env.collect("cpu")["env_id"], tmp_path)
    assert ceilings is not None and ceilings["flops"]["fp32"] > 0


class _RecordingExecutor:
    """Stands in for the worker pool: keeps the cases it is given."""

    cases: list = []

    def run(self, case, ceilings=None, profile=None):
        self.cases.append((case, ceilings))
        return Record.skipped(case, "recorded only").timed(wall_s=0.0)

    def close(self):
        pass


def test_runner_hands_this_envs_ceilings_to_every_case(tmp_path, monkeypatch):
    from harness import runner, suite as suites

    suite = suites.load(Path(__file__).parents[1] / "suites" / "attention_kernels_cpu.yaml")
    cases = [c for c in suites.expand(suite, "cpu", only=["int8"]) if not suites.constraint_failure(suite, c)]
    ceilings = {"flops": {"int8": 1e12}, "bytes_per_s": 1e10}
    calibrate.save({"env_id": "e1"}, ceilings, [], tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setattr(runner, "LocalExecutor", _RecordingExecutor)
    _RecordingExecutor.cases = []
    runner.run(runner.Run(suite, cases, run_dir, {"env_id": "e1"}))
    assert _RecordingExecutor.cases and all(given == ceilings for _, given in _RecordingExecutor.cases)


def test_run_without_a_calibration_says_once_how_to_get_the_pct_columns(tmp_path, monkeypatch, capsys):
    from harness import runner, suite as suites

    monkeypatch.setenv("SEQBENCH_CALIBRATION", str(tmp_path / "none"))
    suite = suites.load(Path(__file__).parents[1] / "suites" / "attention_kernels_cpu.yaml")
    cases = [c for c in suites.expand(suite, "cpu", only=["int8"]) if not suites.constraint_failure(suite, c)]
    run_dir = tmp_path / "out" / "run"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(runner, "LocalExecutor", _RecordingExecutor)
    _RecordingExecutor.cases = []
    runner.run(runner.Run(suite, cases, run_dir, {"env_id": "e3"}))
    said = capsys.readouterr().out
    assert said.count("pct_peak_flops") == 1 and "python -m harness calibrate" in said
    assert len(_RecordingExecutor.cases) > 1 and all(given is None for _, given in _RecordingExecutor.cases)
