"""A run survives every way a case can fail, records each as a row, and can be resumed after kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results import load, read_records
from tests.conftest import PLUGINS, ROOT, TINY_MEASURE, harness_cli, tiny_attention_suite


def only_run_dir(out: Path) -> Path:
    runs = list(out.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_every_failure_mode_becomes_a_row_and_the_run_goes_on(write_suite, tmp_path):
    impls = ["test_oom", "test_hang", "test_exit", "test_segfault", "test_wrong", "test_raises", "naive"]
    suite = tiny_attention_suite(impls=impls, sweep={"seq_len": [16, 32]},
                                 # 12 s: a fresh worker's first case imports its workload and impl,
                                 # which took over 4 s at load 7 on 2 cores (naive timed out)
                                 measure={**TINY_MEASURE, "timeout_s": 12})
    result = harness_cli("run", str(write_suite(suite)), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    frame = load(only_run_dir(tmp_path / "out")).set_index(["label", "seq_len"])
    status = frame["status"].to_dict()
    assert status[("test_oom", 16)] == "oom"
    assert status[("test_oom", 32)] == "skipped"  # pruned: larger than a size that ran out of memory
    assert frame.loc[("test_oom", 32), "reason"] == "pruned: oom at seq_len=16"
    assert status[("test_hang", 16)] == "timeout"
    assert status[("test_hang", 32)] == "skipped"
    assert status[("test_exit", 16)] == status[("test_exit", 32)] == "error"
    assert "exited with status 3" in frame.loc[("test_exit", 16), "reason"]
    assert "SIGSEGV" in frame.loc[("test_segfault", 16), "reason"]
    assert status[("test_wrong", 16)] == "wrong"
    assert frame.loc[("test_wrong", 16), "rel_err"] > frame.loc[("test_wrong", 16), "tolerance"]
    assert status[("test_raises", 32)] == "error"
    assert "ValueError: shapes do not line up" in frame.loc[("test_raises", 32), "reason"]
    assert status[("naive", 16)] == status[("naive", 32)] == "ok"
    assert frame.loc[("naive", 32), "n_samples"] >= 3


def test_unavailable_impl_is_skipped_with_its_reason(write_suite, tmp_path):
    suite = tiny_attention_suite(impls=["naive", "sdpa_cudnn"], sweep={"seq_len": [16]})
    result = harness_cli("run", str(write_suite(suite)), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    frame = load(only_run_dir(tmp_path / "out")).set_index("label")
    assert frame.loc["sdpa_cudnn", "status"] == "skipped"
    assert "CUDNN_ATTENTION" in frame.loc["sdpa_cudnn", "reason"]
    assert frame.loc["naive", "status"] == "ok"


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(write_suite, tmp_path):
    seq_lens = [8, 12, 16, 20, 24, 28, 32, 36]
    suite = tiny_attention_suite(impls=["test_slow"], sweep={"seq_len": seq_lens},
                                 measure={**TINY_MEASURE, "min_reps": 3, "max_reps": 3})
    path, out = write_suite(suite), tmp_path / "out"
    env = {**os.environ, "SEQBENCH_PLUGINS": PLUGINS, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(path), "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = list(out.glob("*/records.jsonl")) if out.exists() else []
        if runs and len(runs[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its worker, mid-case
    proc.wait()
    run_dir = only_run_dir(out)
    before = read_records(run_dir)
    assert 3 <= len(before) < len(seq_lens)
    assert not (run_dir / "records.parquet").exists()

    result = harness_cli("run", str(path), "--resume", str(run_dir))
    assert result.returncode == 0, result.stderr
    after = read_records(run_dir)
    assert sorted(r["params"]["seq_len"] for r in after) == seq_lens
    assert len({r["case_id"] for r in after}) == len(seq_lens)
    assert [r["case_id"] for r in after[: len(before)]] == [r["case_id"] for r in before]
    assert all(r["status"] == "ok" for r in after)
    assert len(load(run_dir)) == len(seq_lens)  # parquet written at the end holds every case


def test_records_jsonl_survives_a_half_written_line(tmp_path):
    from harness.results import RecordWriter

    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"case_id": "a", "status": "ok"}) + "\n" + '{"case_id": "b", "sta')
    assert [r["case_id"] for r in read_records(tmp_path)] == ["a"]
    writer = RecordWriter(tmp_path)  # resuming cuts the partial line before appending
    writer.append({"case_id": "c", "status": "ok"})
    writer.close()
    assert [r["case_id"] for r in read_records(tmp_path)] == ["a", "c"]



HANG_MARKED = """
import os, time
from pathlib import Path
from impls.registry import register

@register("attention", "test_hang_marked")
def hang(q, k, v, *, causal, scale=None):
    Path(os.environ["HANG_MARKER"]).write_text(str(os.getpid()))  # the case is in flight, in this worker
    while True:
        time.sleep(1)
"""


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie nobody reaps (PID 1 in a container may not) counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_worker_dies_when_the_runner_is_killed_mid_case(write_suite, tmp_path):
    (tmp_path / "hang_marked.py").write_text(HANG_MARKED)
    marker = tmp_path / "worker.pid"
    suite = tiny_attention_suite(impls=["test_hang_marked"], sweep={"seq_len": [16]},
                                 measure={**TINY_MEASURE, "timeout_s": 300})
    env = {**os.environ, "SEQBENCH_PLUGINS": "hang_marked", "HANG_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    runner = subprocess.Popen([sys.executable, "-m", "harness", "run", str(write_suite(suite)),
                               "--out", str(tmp_path / "out")], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("w"),
                              start_new_session=True)
    worker = None
    try:
        deadline = time.time() + 240
        while not marker.exists() or not marker.read_text():
            assert time.time() < deadline and runner.poll() is None, (tmp_path / "stderr").read_text()
            time.sleep(0.1)
        worker = int(marker.read_text())
        assert worker != runner.pid and _alive(worker)
        os.kill(runner.pid, signal.SIGKILL)  # the runner alone, not its process group
        runner.wait()
        deadline = time.time() + 10
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the worker outlived its runner"
    finally:  # end only what this test started, and only while it is still that process
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if worker and _alive(worker) and b"spawn_main" in Path(f"/proc/{worker}/cmdline").read_bytes():
            os.kill(worker, signal.SIGKILL)


def started_run(write_suite, tmp_path, **change) -> Path:
    """A run folder as `run` leaves it before its first case: suite.yaml and env.json."""
    from harness import runner, suite as suites

    suite = suites.for_device(suites.load(write_suite(tiny_attention_suite(**change), "started.yaml")), "cpu")
    run_dir = runner.new_run_dir(tmp_path / "out", suite)
    runner.start(run_dir, suite, "cpu")
    return run_dir


@pytest.mark.parametrize("change, fragment", [
    ({"name": "other"}, "that run is of suite 'tiny', not 'other'"),
    ({"sweep": {"seq_len": [16, 64]}}, "the suite's sweep differs from the run's suite.yaml"),
    ({"impls": ["sdpa_math"]}, "the suite's impls differs"),
])
def test_resume_refuses_another_suite(write_suite, tmp_path, capsys, change, fragment):
    from harness.cli import main

    run_dir = started_run(write_suite, tmp_path)
    code = main(["run", str(write_suite(tiny_attention_suite(**change))), "--resume", str(run_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and "\n" not in err
    assert not (run_dir / "records.jsonl").exists()  # nothing appended


def test_resume_refuses_another_device(write_suite, tmp_path, capsys):
    from harness.cli import main

    run_dir = started_run(write_suite, tmp_path)
    env = json.loads((run_dir / "env.json").read_text())
    (run_dir / "env.json").write_text(json.dumps({**env, "device": "cuda"}))
    code = main(["run", str(write_suite(tiny_attention_suite())), "--resume", str(run_dir), "--device", "cpu"])
    assert code == 2 and "that run is on cuda, not cpu; resume it with --device cuda" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["a_file", "a_file/below", pytest.param(
    "/proc/seqbench-no", marks=pytest.mark.skipif(not Path("/proc/self").exists(), reason="Linux's /proc"))])
def test_out_that_cannot_hold_a_run_folder_is_one_line(write_suite, tmp_path, capsys, out):
    from harness.cli import main

    (tmp_path / "a_file").write_text("")
    out = out if out.startswith("/") else str(tmp_path / out)
    code = main(["run", str(write_suite(tiny_attention_suite())), "--out", out])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: --out {out}: ") and "\n" not in err
