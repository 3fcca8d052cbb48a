"""`run --profile`, `profile RUN`, and what report and compare make of profiled runs."""
from __future__ import annotations

import json

import pytest
import yaml

from harness import cli, results, runner
from harness.profile import again, store
from tests.conftest import InProcessExecutor, tiny_attention_suite


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    monkeypatch.setattr(runner, "LocalExecutor", InProcessExecutor)
    monkeypatch.setattr(again, "LocalExecutor", InProcessExecutor)


@pytest.fixture(scope="module")
def profiled_runs(tmp_path_factory):
    """Two profiled runs of a tiny suite (naive and sdpa_math at two sizes), made in this process."""
    tmp_path = tmp_path_factory.mktemp("profiled")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(tiny_attention_suite(impls=["naive", "sdpa_math"])))
    runs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "LocalExecutor", InProcessExecutor)
        for name in ("base", "new"):
            assert cli.main(["run", str(suite), "--profile", "--out", str(tmp_path / name)]) == 0
            runs.append(next((tmp_path / name).iterdir()))
    return runs


def test_run_profile_writes_a_profile_per_case_and_keeps_the_flag_in_suite_yaml(profiled_runs):
    run = profiled_runs[0]
    assert yaml.safe_load((run / "suite.yaml").read_text())["measure"]["profile"] is True
    records = results.read_records(run)
    frame = results.profiles(run)
    assert sorted(frame["case_id"]) == sorted(r["case_id"] for r in records)
    assert (frame["error"] == "").all() and (frame["profile_overhead_ratio"] > 0).all()
    for case_id in frame["case_id"]:
        assert (store.case_dir(run, case_id) / store.TRACE).stat().st_size > 0
    assert set(results.operators(run)["label"]) == {"naive", "sdpa_math"}


def test_profile_again_replaces_one_case_profile_and_leaves_the_records(profiled_runs, capsys):
    run = profiled_runs[0]
    records_before = (run / results.RECORDS).read_bytes()
    case_id = json.loads(records_before.splitlines()[0])["case_id"]
    summary = store.case_dir(run, case_id) / store.SUMMARY
    summary.unlink()
    assert cli.main(["profile", str(run), "--case", case_id, "--stack"]) == 0
    assert json.loads(summary.read_text())["files"]["stacks"] == store.STACKS
    assert (store.case_dir(run, case_id) / store.STACKS).read_text().count("\n") > 10  # stack;stack;op time
    assert (run / results.RECORDS).read_bytes() == records_before
    assert "1 of 1 cases profiled" in capsys.readouterr().out


def test_profile_of_an_unknown_case_is_one_line_exit_2(profiled_runs, capsys):
    assert cli.main(["profile", str(profiled_runs[0]), "--case", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --case nope: not a case of") and err.count("\n") == 1


def test_compare_of_profiled_runs_says_where_the_time_went(profiled_runs, capsys):
    assert cli.main(["compare", *map(str, profiled_runs)]) == 0
    assert "where the time goes (profiled passes" in capsys.readouterr().out
    assert cli.main(["compare", *map(str, profiled_runs), "--markdown"]) == 0
    assert "\n- where the time goes (profiled passes" in capsys.readouterr().out


def test_report_has_where_the_time_goes_with_trace_links(profiled_runs, tmp_path):
    out = tmp_path / "report.html"
    assert cli.main(["report", str(profiled_runs[0]), "-o", str(out)]) == 0
    page = out.read_text()
    assert "Where the time goes" in page and "Top operators per impl" in page
    assert f"{store.TRACE}</a>" in page and "aten::bmm" in page


def test_profile_with_check_only_is_refused_in_one_line(write_suite, capsys):
    suite = write_suite(tiny_attention_suite())
    assert cli.main(["run", str(suite), "--profile", "--check-only"]) == 2
    assert capsys.readouterr().err.startswith("error: --profile: profiles a timed case")


def test_profile_show_prints_each_case_shares_and_refuses_a_run_without_profiles(profiled_runs, tmp_path, capsys):
    assert cli.main(["profile", str(profiled_runs[0]), "--show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "host" in lines[1] and len(lines) == 2 + 4  # a header, then one line per profiled case
    assert all(line.rstrip().split("  ")[-1].strip().startswith(("naive", "sdpa_math")) for line in lines[2:])
    assert cli.main(["profile", str(tmp_path), "--show"]) == 2
