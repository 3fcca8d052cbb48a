"""report on small hand-made runs (fast): which metrics it offers, its one-line errors, runs that
share a folder name, metric direction, the roofline per precision, fractions of peak."""
from __future__ import annotations

import json
import math
from pathlib import Path

import plotly.graph_objects as go
import pytest

from harness import cli
from harness.analysis.speedup import speedups
from harness.errors import UserError
from harness.report import data, figures, tables
from harness.report.pages.generic import parts as section_parts, runs_side_by_side

CALIBRATION = {"ceilings": {"flops": {"fp32": 2.0e12, "bf16": 8.0e12}, "bytes_per_s": 40e9}}


def case(label: str, seq_len: int, precision: str, direction: str, ms: float, status: str = "ok") -> dict:
    """One attention record as a worker writes it: rates are work / median time."""
    flops, moved = 4.0 * seq_len ** 2 * 64, 16.0 * seq_len * 64
    metrics = {"median_ms": ms, "flops": flops, "bytes_moved": moved, "tflops": flops / (ms / 1e3) / 1e12,
               "gbps": moved / (ms / 1e3) / 1e9, "peak_extra_bytes": 1e4 * seq_len, "peak_ratio": 1.25,
               "noisy": False} if status == "ok" else {}
    return {"case_id": f"{label}-{seq_len}-{precision}-{direction}", "workload": "op", "family": "attention",
            "suite": "s", "impl": label, "label": label, "device": "cpu", "status": status,
            "reason": "" if status == "ok" else "boom", "axes": ["seq_len", "precision", "direction"],
            "params": {"seq_len": seq_len, "precision": precision, "direction": direction},
            "metrics": metrics, "samples_ms": [ms * (1 + 0.01 * i) for i in range(-2, 3)] if status == "ok" else [],
            "env_id": "e1"}


def make_run(folder: Path, hostname: str = "box", broken: bool = False) -> Path:
    """naive and a 2x faster impl over 2 sizes x 2 precisions x 2 directions; optionally one error."""
    records = [case(label, n, p, d, ms * n / 64)
               for label, ms in (("naive", 2.0), ("fast", 1.0)) for n in (64, 256)
               for p in ("fp32", "bf16") for d in ("fwd", "fwd_bwd")]
    if broken:
        records.append(case("broken", 64, "fp32", "fwd", 0, status="error"))
    folder.mkdir(parents=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "suite.yaml").write_text("name: s\nbaseline: naive\n")
    (folder / "env.json").write_text(json.dumps({"env_id": "e1", "hostname": hostname, "device": "cpu"}))
    return folder


def section_of(*runs: Path) -> tuple[data.Section, list[data.RunInfo]]:
    frame, infos = data.load_runs(list(runs))
    (only,) = data.sections(frame, infos, None)
    return only, infos


def test_only_metrics_with_one_number_per_case_are_offered(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    frame, infos = data.load_runs([run])
    valid = data.metric_names(frame, infos)
    assert {"median_ms", "tflops", "gbps", "peak_extra_bytes", "peak_ratio"} <= set(valid)
    assert "samples_ms" not in valid and "noisy" not in valid and "seq_len" not in valid
    with pytest.raises(UserError, match="valid: .*median_ms"):
        data.check_request(frame, infos, "samples_ms", None)
    assert cli.main(["report", str(run), "--metric", "samples_ms", "-o", str(tmp_path / "x.html")]) == 2
    assert "--metric samples_ms" in capsys.readouterr().err


def test_output_under_a_file_is_a_one_line_error(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    (tmp_path / "afile").write_text("")
    assert cli.main(["report", str(run), "-o", str(tmp_path / "afile" / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err and "Traceback" not in err


def test_runs_sharing_a_folder_name_are_told_apart_and_the_same_run_twice_is_refused(tmp_path):
    a, b = make_run(tmp_path / "a" / "run"), make_run(tmp_path / "b" / "run")
    _, infos = data.load_runs([a, b])
    assert [i.name for i in infos] == ["a/run", "b/run"]  # same host: by the folder above
    c = make_run(tmp_path / "c" / "run", hostname="gpu-box")
    frame, infos = data.load_runs([a, c])
    assert [i.name for i in infos] == ["run @ box", "run @ gpu-box"]  # two machines: by hostname
    assert set(frame["run"]) == {"run @ box", "run @ gpu-box"}
    with pytest.raises(UserError, match="given twice"):
        data.load_runs([a, tmp_path / "a" / ".." / "a" / "run"])


def test_failures_table_for_the_whole_report_names_each_case(tmp_path):
    frame, _ = data.load_runs([make_run(tmp_path / "run", broken=True)])
    html = tables.failures(frame)
    assert "seq_len=64, precision=fp32, direction=fwd" in html and "op / attention" in html


def test_higher_is_better_metric_ranks_the_faster_impl_above_one(tmp_path):
    section, _ = section_of(make_run(tmp_path / "run"))
    for metric in ("median_ms", "tflops"):
        table = speedups(section.frame, "naive", section.axes, metric)
        assert table["speedup"].tolist() == pytest.approx([2.0] * 8), metric
        heatmap = next(t for t in figures.speedup_heatmap(section, table, metric).data if isinstance(t, go.Heatmap))
        assert all(v == pytest.approx(1.0) for row in heatmap.z for v in row)  # log2(2x): blue, faster


def test_roofline_shows_one_precision_at_a_time_with_its_own_ceiling(tmp_path):
    run = make_run(tmp_path / "results" / "run")
    (run.parent / "calibration-e1.json").write_text(json.dumps(CALIBRATION))
    section, infos = section_of(run)
    fig = figures.roofline(section, infos)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["precision=bf16", "precision=fp32"]
    for button, peak in zip(buttons, (8.0, 2.0)):
        shown = [t for t, visible in zip(fig.data, button.args[0]["visible"]) if visible]
        (ceiling,) = [t for t in shown if t.name.startswith("ceiling")]
        # min(that precision's peak, 40 GB/s x intensity): fp32 caps at 2 TFLOP/s, bf16 stays on the slope
        assert list(ceiling.y) == pytest.approx([min(peak, 40 * x / 1e3) for x in ceiling.x])
        points = [t for t in shown if not t.name.startswith("ceiling")]
        assert {t.marker.symbol for t in points} == {"circle", "triangle-up"}  # fwd, fwd_bwd


def test_fractions_of_peak_and_memory_ratio_are_metrics_and_a_table(tmp_path):
    run = make_run(tmp_path / "results" / "run")
    (run.parent / "calibration-e1.json").write_text(json.dumps(CALIBRATION))
    section, infos = section_of(run)
    row = section.frame.iloc[0]
    assert row["pct_peak_flops"] == pytest.approx(100 * row["tflops"] / 2.0)  # fp32 peak 2 TFLOP/s
    roof = min(2.0, 40 * row["flops"] / row["bytes_moved"] / 1e3)
    assert row["pct_roofline"] == pytest.approx(100 * row["tflops"] / roof)
    assert {"pct_peak_flops", "pct_peak_bandwidth", "pct_roofline"} <= set(data.metric_names(section.frame, infos))
    html = tables.efficiency(section)
    for title in ("% of roofline", "% of peak FLOP/s", "% of peak bandwidth", "peak memory / theoretical"):
        assert title in html
    assert "1.25 / 1.25" in html  # peak_ratio median / max
    titles = [part.title for part in section_parts(section, infos, "pct_roofline")]
    assert "pct_roofline vs seq_len" in titles and "Percent of peak and memory ratio" in titles


def test_fractions_recorded_by_the_worker_are_kept(tmp_path):
    run = make_run(tmp_path / "results" / "run")
    (run.parent / "calibration-e1.json").write_text(json.dumps(CALIBRATION))
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    for r in records:
        r["metrics"]["pct_peak_flops"] = 12.5  # measured against the ceilings the run had
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    section, _ = section_of(run)
    assert (section.frame["pct_peak_flops"] == 12.5).all()


def test_two_runs_are_shown_side_by_side(tmp_path):
    first, second = make_run(tmp_path / "a" / "run"), make_run(tmp_path / "b" / "run")
    records = [json.loads(line) for line in (second / "records.jsonl").read_text().splitlines()]
    for r in records:  # the second machine is 4x faster at everything
        r["metrics"]["median_ms"] /= 4
        r["samples_ms"] = [s / 4 for s in r["samples_ms"]]
    (second / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    section, infos = section_of(first, second)
    (part,) = runs_side_by_side(section, "median_ms")
    assert part.title == "Runs side by side: each run vs R1"
    heatmap = next(t for t in part.figure.data if isinstance(t, go.Heatmap))
    assert set(heatmap.y) == {"R2 · naive", "R2 · fast"}
    assert all(v == pytest.approx(math.log2(4)) for row in heatmap.z for v in row)  # 4x faster in R2
    names = {t.name for t in figures.lines_vs_axis(section, "median_ms", "t").data}
    assert {"naive · R1", "naive · R2", "fast · R1", "fast · R2"} <= names  # short tags in legends
    assert "<td>R1</td><td>a/run</td>" in tables.overview(infos, section.frame)


def test_a_run_that_measures_no_time_defaults_to_its_quality_metric(tmp_path):
    run = tmp_path / "train"
    run.mkdir()
    records = [{"case_id": f"c{n}", "workload": "train", "family": "mixers", "suite": "t", "impl": "lstm",
                "label": "lstm", "device": "cpu", "status": "ok", "reason": "", "axes": ["seq_len"],
                "params": {"seq_len": n}, "metrics": {"val_loss": 2.0, "loss_curve": [3.0, 2.0], "train_s": 1.0},
                "samples_ms": []} for n in (64, 128)]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    frame, infos = data.load_runs([run])
    assert data.default_metric(frame, infos) == "val_loss"
    assert "loss_curve" not in data.metric_names(frame, infos)  # a list per case, not a number
