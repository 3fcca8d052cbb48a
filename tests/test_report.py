"""report: a self-contained page from a real run; escaping; wrong cases never drawn as speedups."""
from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import pytest

from harness import cli
from harness.analysis.speedup import speedups
from harness.report import data, figures
from harness.report.build import build_report
from harness.report.style import esc

pytestmark = pytest.mark.slow  # the shared run fixture takes ~10 s on a loaded 2-core machine


@pytest.fixture(scope="module")
def report(small_report) -> str:
    return small_report.read_text()


def test_report_is_one_self_contained_file_with_plotly_inlined_once(report):
    assert report.count(plotly.offline.get_plotlyjs()[:200]) == 1
    assert not re.search(r"<script[^>]*\bsrc=", report)  # nothing fetched: works offline
    assert not re.search(r"<link[^>]*href=.https?:", report)
    # lines, heatmap, roofline; memory too where the run measured extra memory
    assert report.count('class="plotly-graph-div"') >= 3
    for title in ("median_ms vs seq_len", "speedup vs naive", "roofline", "Correctness against the reference"):
        assert title in report
    assert "quality vs speed" not in report  # rel_err is round-off against the reference, not a quality


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
    figure = figures.lines_vs_axis(section, "median_ms", "t")
    names = {t.name for t in figure.data}
    assert "naive · R1" in names and "naive · R2" in names  # tags, spelled out in the Runs table
    assert "Runs side by side: each run vs R1" in out.read_text()


@pytest.mark.parametrize("calibration", [
    {"matmul_tflops": {"fp32": 2.0}, "copy_gbps": 40},
    {"env_id": "x", "ceilings": {"flops": {"fp32": 2.0e12}, "bytes_per_s": 40e9}},  # harness calibrate's layout
])
def test_roofline_draws_calibrated_ceilings_once_per_machine(small_run, tmp_path, calibration, monkeypatch):
    monkeypatch.setenv("SEQBENCH_CALIBRATION", str(tmp_path / "no-calibrations-here"))
    second = tmp_path / "results" / "copy"
    shutil.copytree(small_run, second)
    env_id = data.load_runs([second])[1][0].env["env_id"]
    (second.parent / f"calibration-{env_id}.json").write_text(json.dumps(calibration))
    frame, runs = data.load_runs([small_run, second])
    (section,) = data.sections(frame, runs, None)
    lines = [t for t in figures.roofline(section, runs).data if t.name.startswith("ceiling")]
    assert len(lines) == 1  # only the copy has a calibration file beside it
    # min(peak, bandwidth x intensity): 40 GB/s x 10 FLOP/B = 0.4 TFLOP/s, capped at 2 TFLOP/s
    ys = dict(zip(lines[0].x, lines[0].y))
    assert all(y == pytest.approx(min(2.0, 40 * x / 1e3)) for x, y in ys.items())


def test_report_finds_a_calibration_where_harness_run_does(small_run, tmp_path, monkeypatch):
    fixed = tmp_path / "calibrations"
    fixed.mkdir()
    monkeypatch.setenv("SEQBENCH_CALIBRATION", str(fixed))
    env_id = data.load_runs([small_run])[1][0].env["env_id"]
    (fixed / f"calibration-{env_id}.json").write_text(json.dumps({"matmul_tflops": {"fp32": 2.0}, "copy_gbps": 40}))
    frame, runs = data.load_runs([small_run])
    assert runs[0].calibration == {"matmul_tflops": {"fp32": 2.0}, "copy_gbps": 40}
    assert "pct_roofline" in frame


def _handmade_run(folder, records):
    folder.mkdir(parents=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_report_survives_a_run_with_no_sweep_and_a_run_with_only_failures(tmp_path):
    base = {"workload": "op", "family": "attention", "suite": "s", "device": "cpu", "reason": "", "samples_ms": []}
    single = _handmade_run(tmp_path / "single", [
        base | {"case_id": f"c{i}", "impl": name, "label": name, "axes": [], "params": {"seq_len": 64},
                "status": "ok", "metrics": {"median_ms": ms, "n_samples": 5}}
        for i, (name, ms) in enumerate([("a", 1.0), ("b", 2.0)])])
    failed = _handmade_run(tmp_path / "failed", [
        base | {"case_id": "f", "impl": "a", "label": "a", "axes": ["seq_len"], "params": {"seq_len": 64},
                "status": "error", "reason": "boom", "metrics": {}}])
    html, count = build_report([single, failed])
    assert count >= 1 and "boom" in html


def test_compare_rejects_a_metric_no_case_has(small_run):
    assert cli.main(["compare", str(small_run), str(small_run), "--metric", "nonsense"]) == 2


def test_claims_section_lists_only_the_claims_these_runs_measure(tmp_path):
    import pandas as pd

    from harness.report.tables import claims, measured_claims

    rows = [{"label": "transformer", "status": "ok", "device": "cpu", "kv_heads": h, "new_tokens": 64,
             "prompt_len": 16, "batch": 1, "cache_bytes_final": 4096.0 * h} for h in (4, 1)]
    html = claims(*measured_claims(pd.DataFrame(rows)))
    assert "gqa_cache_shrink" in html and "reproduced" in html and "1 of " in html
    # claims these records cannot judge are counted, not listed: the claims command lists them
    assert "flash_attention_speedup" not in html and "not applicable here" not in html
    assert "not measured" not in html and "python -m harness claims" in html
    for column in ("their conditions", "our conditions", "band", "measured (95% interval) per point", "kernel path"):
        assert f"<th>{column}</th>" in html


@pytest.mark.parametrize("axes", [[], ["seq_len"]], ids=["nothing swept", "seq_len swept"])
def test_two_runs_of_one_suite_share_a_report_with_or_without_swept_axes(tmp_path, axes):
    base = {"workload": "op", "family": "attention", "suite": "s", "device": "cpu", "reason": "", "axes": axes,
            "status": "ok"}
    runs = [_handmade_run(tmp_path / run, [
        base | {"case_id": f"c{name}{n}", "impl": name, "label": name, "params": {"seq_len": n},
                "samples_ms": [ms * n / 64] * 5, "metrics": {"median_ms": ms * n / 64, "n_samples": 5}}
        for name, ms in (("a", 1.0 * scale), ("b", 2.0)) for n in ((64,) if not axes else (64, 128))])
        for run, scale in (("r1", 1.0), ("r2", 1.5))]
    html, count = build_report(runs)
    assert count >= 1 and "Runs side by side: each run vs R1" in html
