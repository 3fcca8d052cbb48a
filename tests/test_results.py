"""Run folders read back as pandas tables: the parquet round trip and several runs at once."""
from __future__ import annotations

import json

import pandas as pd

from harness.results import RecordWriter, load, to_frame, write_table


def fake_record(case_id, seq_len, status="ok", **metrics):
    return {"case_id": case_id, "label": "naive", "status": status, "axes": ["seq_len"],
            "params": {"seq_len": seq_len, "precision": "fp32", "kv_heads": None if seq_len < 64 else 2},
            "metrics": {"median_ms": 1.5, **metrics}, "samples_ms": [1.4, 1.5, 1.6]}


def write_run(folder, records):
    folder.mkdir()
    writer = RecordWriter(folder)
    for r in records:
        writer.append(r)
    writer.close()
    (folder / "env.json").write_text(json.dumps({"env_id": "x"}))


def test_parquet_round_trip_keeps_every_column_and_sample(tmp_path):
    run = tmp_path / "run"
    write_run(run, [fake_record("a", 32), fake_record("b", 64, status="oom", peak_bytes=1e9)])
    from_jsonl = load(run)
    write_table(run)
    from_parquet = load(run)
    assert list(from_parquet.columns) == list(from_jsonl.columns)
    assert from_parquet["samples_ms"].map(list).tolist() == [[1.4, 1.5, 1.6]] * 2
    pd.testing.assert_frame_equal(from_parquet.drop(columns=["samples_ms", "axes"]),
                                  from_jsonl.drop(columns=["samples_ms", "axes"]), check_dtype=False)


def test_load_several_runs_tags_each_row(tmp_path):
    write_run(tmp_path / "A", [fake_record("a", 32)])
    write_run(tmp_path / "B", [fake_record("a", 32), fake_record("b", 64)])
    frame = load(tmp_path / "A", tmp_path / "B")
    assert frame["run"].tolist() == ["A", "B", "B"]


def test_params_and_metrics_become_columns():
    frame = to_frame([fake_record("a", 32, tflops=2.0)])
    assert {"seq_len", "precision", "median_ms", "tflops", "status"} <= set(frame.columns)


def test_the_terminal_table_explains_the_marks_it_shows():
    from harness.console import legend, summary_table

    def row(seq_len, status="ok", noisy=False):
        return {"label": "naive", "status": status, "axes": ["seq_len"], "seq_len": seq_len,
                "median_ms": 1.5 if status == "ok" else None, "noisy": noisy}

    assert legend(pd.DataFrame([row(16), row(32)])) is None  # plain times need no legend
    frame = pd.DataFrame([row(16, noisy=True), row(32, "wrong"), row(64, "skipped")])
    assert summary_table(frame, "t").row_count == 1
    text = legend(frame)
    assert text.startswith("~: noisy (IQR/median above measure.noisy_above)")
    assert "✗ wrong: outside the reference's tolerance" in text and "– skip: not run" in text
    assert "oom" not in text and "\n" not in text
