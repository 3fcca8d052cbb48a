"""A run folder never lies: one owner at a time, every record kept once, and a folder that
cannot be written stops the run in one line that says what is saved and how to finish."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from harness import cli, results, run_lock, runner
from harness.results import RecordWriter, read_records
from tests.conftest import ROOT, TINY_MEASURE, run_in_process, tiny_attention_suite


def cli_run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["run", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@pytest.fixture
def in_process(monkeypatch):
    """Cases run in this process: the run folder's behaviour, not the worker's, is under test."""
    run_in_process(monkeypatch)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """(suite path, run folder) of a completed 4-case run, made once for this file."""
    root = tmp_path_factory.mktemp("finished")
    path = root / "suite.yaml"
    path.write_text(yaml.safe_dump(tiny_attention_suite(impls=["naive", "sdpa_math"], sweep={"seq_len": [16, 32]})))
    with pytest.MonkeyPatch.context() as patch:
        run_in_process(patch)
        assert cli.main(["run", str(path), "--out", str(root / "out")]) == 0
    (run_dir,) = (root / "out").iterdir()
    return path, run_dir


@pytest.fixture
def finished_run(one_run, tmp_path, in_process):
    """A copy of one_run's folder for this test to change."""
    path, run_dir = one_run
    copy = tmp_path / "out" / run_dir.name
    shutil.copytree(run_dir, copy)
    return path, copy


def lines(run_dir) -> list[bytes]:
    return (run_dir / results.RECORDS).read_bytes().splitlines(keepends=True)


# --- one owner ----------------------------------------------------------------------------

HOLDER = ("import sys, time; sys.path.insert(0, {root!r}); from harness import run_lock\n"
          "with run_lock.hold({run!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")


@pytest.fixture
def held_by_another_process(finished_run):
    """The run folder, locked by a live process (like a second `run --resume` in progress)."""
    _, run_dir = finished_run
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=str(ROOT), run=str(run_dir))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()


def test_a_resume_into_a_folder_in_use_is_refused_naming_the_holder(finished_run, held_by_another_process, capsys):
    path, run_dir = finished_run
    before = lines(run_dir)
    code, _, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 2 and "\n" not in err
    assert f"in use by pid {held_by_another_process.pid} on " in err and "since " in err
    assert lines(run_dir) == before


def test_a_lock_left_by_a_killed_process_is_taken_over(finished_run, held_by_another_process, capsys):
    path, run_dir = finished_run
    held_by_another_process.send_signal(signal.SIGKILL)
    held_by_another_process.wait()
    assert (run_dir / run_lock.LOCK).exists()  # it had no chance to clean up
    code, _, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 0, err
    assert not (run_dir / run_lock.LOCK).exists()  # released when the resume finished
    assert len(read_records(run_dir)) == 4


def test_holding_nests_within_one_process_and_releases_at_the_outermost(tmp_path):
    with run_lock.hold(tmp_path):
        with run_lock.hold(tmp_path):
            assert (tmp_path / run_lock.LOCK).exists()
        assert json.loads((tmp_path / run_lock.LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / run_lock.LOCK).exists()


# --- every record once ----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["report", "compare", "claims"])
def test_a_case_recorded_twice_is_an_error_wherever_the_run_is_read(finished_run, tmp_path, capsys, command):
    _, run_dir = finished_run
    (run_dir / results.TABLE).unlink()
    with (run_dir / results.RECORDS).open("ab") as handle:
        handle.write(lines(run_dir)[1])
    argv = {"report": ["report", str(run_dir), "-o", str(tmp_path / "r.html")],
            "compare": ["compare", str(run_dir), str(tmp_path)],
            "claims": ["claims", str(run_dir)]}[command]
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "is recorded on lines 2 and 5; a run folder holds each case once" in err


def test_a_table_holding_a_case_twice_is_refused_too(finished_run):
    _, run_dir = finished_run
    table = pd.read_parquet(run_dir / results.TABLE)
    pd.concat([table, table.iloc[[0]]]).to_parquet(run_dir / results.TABLE)
    with pytest.raises(results.UserError, match="appears more than once"):
        results.load(run_dir)


def test_a_last_record_missing_only_its_newline_is_kept_on_resume(finished_run, capsys):
    path, run_dir = finished_run
    (run_dir / results.RECORDS).write_bytes(b"".join(lines(run_dir))[:-1])
    assert len(read_records(run_dir)) == 4  # readers count it already
    code, out, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 0, err
    assert "its last record was written without a newline; kept" in out
    assert len(lines(run_dir)) == 4 and all(line.endswith(b"\n") for line in lines(run_dir))


def test_a_last_line_cut_mid_write_is_dropped_and_its_case_run_again(finished_run, capsys):
    path, run_dir = finished_run
    before = read_records(run_dir)
    (run_dir / results.RECORDS).write_bytes(b"".join(lines(run_dir))[:-40])
    assert [r["case_id"] for r in read_records(run_dir)] == [r["case_id"] for r in before[:3]]
    code, out, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 0, err
    assert "its last line was cut off mid-write" in out and "that case runs again" in out
    assert sorted(r["case_id"] for r in read_records(run_dir)) == sorted(r["case_id"] for r in before)


def test_a_damaged_line_before_the_last_names_file_and_line(finished_run, capsys):
    path, run_dir = finished_run
    damaged = lines(run_dir)
    damaged[1] = b'{"case_id": "x", garbage\n'
    (run_dir / results.RECORDS).write_bytes(b"".join(damaged))
    code, _, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 2 and "\n" not in err
    assert f"{run_dir / results.RECORDS}:2: not a record" in err
    assert b"".join(lines(run_dir)) == b"".join(damaged)  # nothing appended, nothing cut


# --- a folder that cannot be written -------------------------------------------------------

def full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_at_start_leaves_nothing_behind(write_suite, tmp_path, monkeypatch, capsys):
    path = write_suite(tiny_attention_suite())
    monkeypatch.setattr(runner.environment, "collect", full)  # suite.yaml written, env.json not
    code, _, err = cli_run(capsys, path, "--out", tmp_path / "out")
    assert code == 2 and "\n" not in err
    assert "cannot write the run folder (No space left on device); nothing was measured" in err
    assert not (tmp_path / "out").exists()


def test_an_unwritable_folder_at_resume_is_refused_before_anything_runs(finished_run, monkeypatch, capsys):
    path, run_dir = finished_run
    monkeypatch.setattr(run_lock.os, "open", lambda *a, **k: full())
    code, _, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 2 and "cannot write in the run folder (No space left on device); nothing was run" in err


def test_disk_full_mid_run_stops_with_what_is_saved_and_the_resume_command(write_suite, tmp_path, in_process,
                                                                            monkeypatch, capsys):
    path = write_suite(tiny_attention_suite(sweep={"seq_len": [16, 24, 32, 40]}))
    real_fsync, calls = os.fsync, []

    def fsync_then_full(fd):
        calls.append(fd)
        if len(calls) > 2:
            full()
        real_fsync(fd)

    monkeypatch.setattr(results.os, "fsync", fsync_then_full)
    code, _, err = cli_run(capsys, path, "--out", tmp_path / "out")
    (run_dir,) = (tmp_path / "out").iterdir()
    assert code == 1 and "\n" not in err
    assert f"cannot write {run_dir / results.RECORDS} (No space left on device); 2 of 4 cases are saved" in err
    assert err.endswith(f"finish it with: python -m harness run {path} --resume {run_dir}")
    assert len(lines(run_dir)) == 2 and lines(run_dir)[-1].endswith(b"\n")  # the failed write was undone
    monkeypatch.setattr(results.os, "fsync", real_fsync)
    code, _, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 0, err
    assert len(read_records(run_dir)) == 4


def test_a_table_that_cannot_be_written_leaves_the_records_readable(write_suite, tmp_path, in_process,
                                                                    monkeypatch, capsys):
    path = write_suite(tiny_attention_suite())
    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    code, _, err = cli_run(capsys, path, "--out", tmp_path / "out")
    (run_dir,) = (tmp_path / "out").iterdir()
    assert code == 1 and "all 2 records are saved in records.jsonl, which report and compare read" in err
    assert sorted(p.name for p in run_dir.iterdir()) == ["env.json", "records.jsonl", "suite.yaml"]
    assert len(results.load(run_dir)) == 2


def test_a_record_write_that_fails_leaves_no_half_line(tmp_path, monkeypatch):
    writer = RecordWriter(tmp_path)
    writer.append({"case_id": "a", "status": "ok"})
    monkeypatch.setattr(results.os, "fsync", full)
    with pytest.raises(OSError):
        writer.append({"case_id": "b", "status": "ok", "padding": "x" * 10_000})
    writer.close()
    assert [r["case_id"] for r in read_records(tmp_path)] == ["a"]
    assert (tmp_path / results.RECORDS).read_bytes().endswith(b"}\n")


# --- resume with other measure settings ------------------------------------------------------

def test_resume_with_a_changed_measure_block_says_what_changed_and_needs_force(finished_run, write_suite,
                                                                               capsys):
    path, run_dir = finished_run
    suite = yaml.safe_load(path.read_text())
    suite["measure"] = {**TINY_MEASURE, "min_reps": 4, "max_time_s": 0.1}
    changed = write_suite(suite, "changed.yaml")
    code, _, err = cli_run(capsys, changed, "--resume", run_dir)
    assert code == 2 and "\n" not in err
    assert "the suite's measure differs from the run's suite.yaml (max_time_s 0.05 -> 0.1; min_reps 3 -> 4)" in err
    assert "--force" in err and not (run_dir / runner.RESUMES).exists()
    code, out, err = cli_run(capsys, changed, "--resume", run_dir, "--force")
    assert code == 0, err
    assert "--force: the cases after the first 4 run under a changed measure block" in out
    (note,) = yaml.safe_load((run_dir / runner.RESUMES).read_text())
    assert note["records_before"] == 4 and note["measure_changes"] == ["max_time_s 0.05 -> 0.1", "min_reps 3 -> 4"]


def test_a_measure_setting_added_since_the_run_is_not_a_change(finished_run, capsys):
    path, run_dir = finished_run
    saved = yaml.safe_load((run_dir / "suite.yaml").read_text())
    del saved["measure"]["memory_passes"]  # as a run from before that setting existed
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    code, _, err = cli_run(capsys, path, "--resume", run_dir)
    assert code == 0, err


def test_force_without_resume_is_a_bad_flag(finished_run, capsys):
    path, _ = finished_run
    code, _, err = cli_run(capsys, path, "--force")
    assert code == 2 and "--force: only with --resume RUN" in err


def test_every_record_says_when_its_case_started(finished_run):
    records = results.read_records(finished_run[1])
    starts = [r["started_at"] for r in records]
    assert all(later >= earlier + r["worker_s"] for earlier, later, r in zip(starts, starts[1:], records))
