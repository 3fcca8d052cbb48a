"""report: a self-contained page from a real run; escaping; wrong cases never drawn as speedups."""
from __future__ import annotations

import re
import shutil

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import pytest

from harness import cli
from harness.analysis.speedup import speedups
from harness.report import data, figures
from harness.report.style import esc

pytestmark = pytest.mark.slow  # the shared run fixture takes ~10 s on a loaded 2-core machine


@pytest.fixture(scope="module")
def report(small_report) -> str:
    return small_report.read_text()


def test_report_is_one_self_contained_file_with_plotly_inlined_once(report):
    assert report.count(plotly.offline.get_plotlyjs()[:200]) == 1
    assert not re.search(r"<script[^>]*\bsrc=", report)  # nothing fetched: works offline
    assert not re.search(r"<link[^>]*href=.https?:", report)
    # lines, heatmap, roofline, quality; memory too where the run measured extra memory
    assert report.count('class="plotly-graph-div"') >= 4
    for title in ("median_ms vs seq_len", "speedup vs naive", "roofline", "quality vs speed"):
        assert title in report


def test_user_text_is_escaped_everywhere(report, hostile_text):
    for text in hostile_text.values():
        assert text not in report
        assert esc(text) in report  # shown, as text


def test_report_lists_every_case_that_did_not_end_ok(small_run, report):
    frame = pd.read_json(small_run / "records.jsonl", lines=True)
    bad = frame[frame["status"] != "ok"]
    assert set(bad["status"]) == {"wrong", "error"}
    failures = report.split("<section id='failures'>")[1].split("</section>")[0]
    assert failures.count("<tr>") - 1 == len(bad)  # one row per case, plus the header


@pytest.fixture(scope="module")
def section(small_run):
    frame, runs = data.load_runs([small_run])
    (only,) = data.sections(frame, runs, None)
    return only


def test_wrong_cases_are_never_speedups(section, hostile_text):
    wrong_label = hostile_text["label"]
    table = speedups(section.frame, section.baseline, section.axes)
    wrong = table[table["label"] == wrong_label]
    assert len(wrong) == 6 and wrong["speedup"].isna().all() and (wrong["status"] == "wrong").all()
    assert table.loc[table["label"] == "sdpa_math", "speedup"].notna().any()
    figure = figures.speedup_heatmap(section, table, "median_ms")
    heatmaps = [t for t in figure.data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) == 2  # one per value of causal, behind the dropdown
    for heatmap in heatmaps:
        rows = list(heatmap.y)
        assert all(v is None for v in heatmap.z[rows.index(esc(wrong_label))])
        assert any(v is not None for v in heatmap.z[rows.index("sdpa_math")])


def test_baseline_defaults_to_the_suite_and_can_be_overridden(small_run, section, tmp_path):
    assert section.baseline == "naive"
    out = tmp_path / "r.html"
    assert cli.main(["report", str(small_run), "-o", str(out), "--baseline", "sdpa_math"]) == 0
    assert "speedup vs sdpa_math" in out.read_text()


def test_bad_report_requests_exit_two(small_run, tmp_path):
    assert cli.main(["report", str(small_run), "--metric", "nonsense_ms", "-o", str(tmp_path / "a.html")]) == 2
    assert cli.main(["report", str(small_run), "--baseline", "nope", "-o", str(tmp_path / "b.html")]) == 2
    assert cli.main(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "c.html")]) == 2


def test_two_runs_share_one_report(small_run, tmp_path):
    second = tmp_path / "second-run"
    shutil.copytree(small_run, second)
    out = tmp_path / "both.html"
    assert cli.main(["report", str(small_run), str(second), "-o", str(out)]) == 0
    frame, runs = data.load_runs([small_run, second])
    (section,) = data.sections(frame, runs, None)
    figure = figures.lines_vs_axis(section, "median_ms", "ms", "t")
    names = {t.name for t in figure.data}
    assert f"naive · {small_run.name}" in names and "naive · second-run" in names
