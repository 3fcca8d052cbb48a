"""The report answers each workload's question: the size axis by meaning, quality only from
quality metrics, a headline with intervals, units and readable ticks, figures left out with
their reason, labels escaped once, and the figures exported as images."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from harness import cli
from harness.report import data, figures, headline, static, tables
from harness.report.pages import generate, generic
from harness.report.style import series_name

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def record(label: str, axes: dict, metrics: dict, *, workload: str = "op", status: str = "ok",
           samples_ms: list[float] | None = None, metric_samples: dict | None = None, n: int = 0) -> dict:
    return {"case_id": f"{label}-{n}-{json.dumps(axes, sort_keys=True)}", "workload": workload, "family": "f",
            "suite": "pages-test", "impl": label, "label": label, "device": "cpu", "status": status,
            "reason": "" if status == "ok" else "it broke", "axes": list(axes), "params": axes,
            "metrics": metrics, "samples_ms": samples_ms or [], "metric_samples": metric_samples or {}}


def section_of(tmp_path: Path, records: list[dict]) -> data.Section:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    frame, runs = data.load_runs([run])
    (only,) = data.sections(frame, runs, None)
    return only


def timed(ms: float, seed: int, spread: float = 0.01) -> dict:
    samples = list(np.random.default_rng(seed).normal(ms, spread * ms, 20))
    return {"samples_ms": samples, "metrics": {"median_ms": float(np.median(samples))}}


def test_the_x_axis_is_the_size_axis_not_the_first_swept(tmp_path):
    rows = [record("m", {"strategy": s, "batch": b, "prompt_len": p}, {"tokens_per_s": 1.0 + b + p}, n=i)
            for i, (s, b, p) in enumerate((s, b, p) for s in ("greedy", "beam") for b in (1, 4) for p in (16, 64))]
    assert section_of(tmp_path, rows).x == "prompt_len"  # the decoding run opened on strategy before
    frame = section_of(tmp_path, rows).frame
    assert data.size_axis(frame, ["strategy", "batch"]) == "batch"
    assert data.size_axis(frame, ["strategy"]) == "strategy"


def test_quality_against_speed_only_with_quality_metrics(tmp_path):
    exact = [record(label, {"seq_len": n}, {"median_ms": n * f, "rel_err": 1e-7 * f, "tolerance": 1e-4})
             for label, f in (("a", 1.0), ("b", 2.0)) for n in (64, 128)]
    section = section_of(tmp_path, exact)
    assert generic.quality_parts(section, "median_ms") == []  # round-off is not a quality
    assert "max relative error" in tables.correctness(section)
    trained = [record(label, {"seq_len": 64}, {"val_loss": loss, "tokens_per_s": rate}, workload="train")
               for label, loss, rate in (("a", 2.0, 100.0), ("b", 1.5, 50.0), ("c", 2.5, 40.0))]
    (part,) = generic.quality_parts(section_of(tmp_path, trained), "val_loss")
    front = next(t for t in part.figure.data if t.name == "Pareto front")
    assert list(front.y) == [1.5, 2.0]  # c is beaten on both; a and b trade speed for loss


def test_headline_names_the_winner_with_an_interval_and_says_when_it_cannot_tell(tmp_path):
    rows = []
    for n, (fast, slow) in {64: (1.0, 2.0), 128: (1.0, 1.001)}.items():
        for label, ms, seed in (("fast", fast, n), ("slow", slow, n + 1)):
            t = timed(ms, seed)
            rows.append(record(label, {"seq_len": n}, t["metrics"], samples_ms=t["samples_ms"]))
    section = section_of(tmp_path, rows)
    leads = {lead.x: lead for lead in headline.leads(section, "median_ms")}
    clear = leads[64].margin
    assert leads[64].winner == "fast" and clear.low > 1.8 and clear.high < 2.2
    assert leads[128].margin.low < 1 < leads[128].margin.high
    html = headline.section_html(section, "median_ms", [])
    assert f"[{clear.low:.3g}, {clear.high:.3g}]" in html and "(not separable)" in html


def test_headline_says_what_failed(tmp_path):
    rows = [record("a", {"seq_len": 8}, {"median_ms": 1.0}), record("b", {"seq_len": 8}, {}, status="error"),
            record("c", {"seq_len": 8}, {"median_ms": 0.1}, status="wrong")]
    line = headline.failure_line(section_of(tmp_path, rows).frame)
    assert "1 wrong (c)" in line and "1 error (b)" in line
    assert headline.failure_line(section_of(tmp_path, rows[:1]).frame) == ""


def test_a_figure_without_its_data_is_left_out_with_the_reason(tmp_path):
    rows = [record(label, {"strategy": "greedy", "batch": b}, {"tokens_per_s": 10.0 * b, "median_ms": 1.0},
                   workload="generate") for label in ("a", "b") for b in (1, 4)]
    parts = {p.title: p for p in generate.parts(section_of(tmp_path, rows), [], "tokens_per_s")}
    assert parts["Tokens/s against batch"].figure is not None
    for title in ("Tokens/s against prompt length", "Time to first token", "Speculative decoding"):
        assert parts[title].figure is None and "Not drawn:" in parts[title].html


def test_generate_page_draws_per_call_samples_and_speculative_speedup(tmp_path):
    rows = []
    for strategy, ms in (("greedy", 10.0), ("speculative", 5.0)):
        extra = {"acceptance_rate": 0.7, "alpha": 0.8} if strategy == "speculative" else {}
        rows.append(record("lm", {"strategy": strategy, "k": 4}, {"median_ms": ms, "tokens_per_s": 100 / ms, **extra},
                           workload="generate", metric_samples={"time_to_first_token_ms": [1.0, 1.2, 1.1]}))
    section = section_of(tmp_path, rows)
    parts = {p.title: p for p in generate.parts(section, [], "tokens_per_s")}
    boxes = parts["Time to first token"].figure.data
    assert sorted(len(b.y) for b in boxes) == [3, 3]
    measured = next(t for t in parts["Speculative decoding"].figure.data if t.name == "lm")
    assert list(measured.y) == [2.0]  # greedy 10 ms over speculative 5 ms


def test_axes_carry_units_and_log_ticks_read_as_whole_numbers(tmp_path):
    rows = [record("a", {"seq_len": n}, {"median_ms": 0.01 * n, "peak_extra_bytes": 1e4 * n}) for n in (16, 256, 4096)]
    section = section_of(tmp_path, rows)
    memory = figures.lines_vs_axis(section, "peak_extra_bytes", "memory")
    assert memory.layout.yaxis.title.text == "peak extra memory (MB)"
    assert list(memory.data[0].y) == pytest.approx([0.16, 2.56, 40.96])  # bytes drawn in MB
    assert memory.layout.xaxis.title.text == "seq_len (tokens)"
    timing = figures.lines_vs_axis(section, "median_ms", "time")
    assert timing.layout.yaxis.type == "log" and timing.layout.yaxis.tickformat == "~g"  # 0.02, not "2"
    assert timing.layout.yaxis.title.text.endswith("(ms)")


def test_labels_are_escaped_once_in_figures():
    assert series_name('say "hi" <b>', None) == 'say "hi" &lt;b&gt;'  # plotly shows &quot; as typed


def test_static_images_are_skipped_with_the_reason_where_no_renderer_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(static, "KALEIDO", "kaleido_is_not_here")
    run = REFERENCE / "cpu-epyc-2core-2026-12-02-claims_mamba_scaling"
    out = tmp_path / "report.html"
    assert cli.main(["report", str(run), "-o", str(out), "--static", str(tmp_path / "figures")]) == 0
    assert out.exists() and "static figures skipped: kaleido is not installed" in capsys.readouterr().out


@pytest.mark.skipif(static.renderer_missing() is not None or shutil.which("chromium") is None,
                    reason="kaleido or Chromium is not installed")
def test_static_images_are_written_as_png_and_svg(tmp_path):
    """One small figure: kaleido starts a browser per call, the slow part of this test."""
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]), layout={"updatemenus": [
        {"buttons": [{"label": "causal=True", "method": "update", "args": [{}]}]}]})
    paths = static.write_static([("speed", figure)], tmp_path)
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 10_000
    svg = paths[1].read_text()
    assert svg.startswith("<svg") and "causal=True" in svg  # the dropdown's entry is named in the title


def test_a_run_whose_every_case_failed_still_gets_a_report_that_says_so(tmp_path, capsys):
    rows = [record(label, {"task": "char_lm"}, {}, workload="train", status="error") for label in ("a", "b")]
    section_of(tmp_path, rows)  # writes tmp_path/run
    out = tmp_path / "report.html"
    assert cli.main(["report", str(tmp_path / "run"), "-o", str(out)]) == 0
    html = out.read_text()
    assert "<b>Not ok:</b> 2 error (a, b)" in html and "Not drawn: no ok case records a loss_curve" in html
