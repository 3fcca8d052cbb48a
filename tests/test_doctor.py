"""`harness doctor` and `harness run --check-only`: the correctness checks without timing."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
import yaml

from harness import cli
from harness.doctor import kernels, plan
from impls import registry
from impls.attention.naive import naive
from impls.requirements import _importable
from tests.conftest import tiny_attention_suite

# The CPU's checks of a few impls that cover every kind of row: library kernels that are not
# here, a Triton kernel without its interpreter, a plain one, a model preset.
FEW = ["naive", "flash_attn", "sdpa_cudnn", "triton_flash", "mamba_triton", "transformer"]


def _doctor(tmp_path, *args: str) -> tuple[int, dict]:
    report = tmp_path / "doctor.json"
    status = cli.main(["doctor", "--device", "cpu", "--no-interpret", "--json", str(report), *args])
    return status, json.loads(report.read_text())


def test_doctor_on_this_cpu_passes_and_says_why_each_skipped_impl_did_not_run(tmp_path, capsys):
    only = [arg for name in FEW for arg in ("--only", name)]
    status, report = _doctor(tmp_path, *only)
    assert status == 0
    rows = {(row["impl"], row["what"]): row for row in report["rows"]}
    assert rows[("naive", "fp32")]["status"] == "pass" and rows[("naive", "bf16")]["status"] == "pass"
    assert rows[("transformer", "fp32")]["status"] == "pass"
    assert 0 <= rows[("naive", "fp32")]["margin"] < 1
    skipped = {impl: row["detail"] for (impl, _), row in rows.items() if row["status"] == "skipped"}
    if not _importable("flash_attn"):
        assert "flash-attn is not installed" in skipped["flash_attn"]
    assert "sdpa_cudnn" in skipped and skipped["sdpa_cudnn"]
    if os.environ.get("TRITON_INTERPRET") != "1":
        assert "TRITON_INTERPRET=1" in skipped["triton_flash"]
        assert "TRITON_INTERPRET=1" in skipped["mamba_triton"]
    assert not [row for row in report["rows"] if row["status"] == "fail"]
    stack = report["stack"]
    assert stack["torch"] == torch.__version__ and "CPU" in stack
    out = capsys.readouterr().out  # the table (wrapped to the terminal's width), then the counts
    assert "flash_attn" in out and "skipped" in out and ", 0 fail, " in out


def _wrong(q, k, v, *, causal: bool, scale=None):
    return naive(q, k, v, causal=causal, scale=scale) * 1.01  # 1% off: far outside fp32's 1e-4


def _raises(q, k, v, *, causal: bool, scale=None):
    raise RuntimeError("kernel exploded")


@pytest.mark.parametrize("broken, said", [(_wrong, "wrong: error"), (_raises, "kernel exploded")])
def test_a_broken_impl_fails_the_doctor_which_names_it(tmp_path, capsys, monkeypatch, broken, said):
    impl = registry.get("attention", "naive")
    monkeypatch.setitem(registry._REGISTRY["attention"], "naive", dataclasses.replace(impl, fn=broken))
    status, report = _doctor(tmp_path, "--only", "naive", "--only", "chunked")
    assert status == 1
    failed = [row for row in report["rows"] if row["status"] == "fail"]
    assert failed and {row["impl"] for row in failed} == {"naive"}
    assert all(said in row["detail"] for row in failed)
    assert all(row["status"] == "pass" for row in report["rows"] if row["impl"] == "chunked")
    assert "failed: naive (" in capsys.readouterr().out


def test_doctor_stops_starting_rows_past_its_budget_and_says_which(tmp_path):
    status, report = _doctor(tmp_path, "--only", "naive", "--budget-s", "1e-9")
    assert status == 0 and len(report["rows"]) == 3  # fp32, fp16, bf16: listed, not checked
    assert all(row["status"] == "skipped" and "not reached within --budget-s" in row["detail"]
               for row in report["rows"])


def test_doctor_refuses_an_impl_it_does_not_check(capsys):
    assert cli.main(["doctor", "--device", "cpu", "--no-interpret", "--only", "no_such_impl"]) == 2
    assert "--only no_such_impl" in capsys.readouterr().err


def test_doctor_plans_every_attention_impl_except_the_references():
    planned = {row.impl for row in plan.rows("cpu") if row.group == "attention"}
    names = set(registry.names("attention"))
    assert {"naive", "triton_flash", "flash_attn", "flex", "int8", "local"} <= planned
    assert not planned & {"reference", "local_reference", "int8_reference", "padded_reference"}
    assert planned <= names
    order = [row.impl for row in plan.rows("cpu")]
    compiled = [i for i, impl in enumerate(order) if impl in ("flex", "flex_window")]
    assert compiled == list(range(len(order) - len(compiled), len(order)))  # compiling at each shape: last


class _Tuner:
    def __init__(self, configs):
        self.configs = configs


def test_pinned_holds_one_config_and_restores_the_list_even_after_a_failure():
    tuners = [_Tuner(["a", "b", "c"]), _Tuner(["a", "b", "c"])]
    with pytest.raises(ValueError):
        with kernels.pinned(tuners, "b"):
            assert [t.configs for t in tuners] == [["b"], ["b"]]
            raise ValueError
    assert [t.configs for t in tuners] == [["a", "b", "c"]] * 2


@pytest.mark.skipif(not _importable("triton") or os.environ.get("TRITON_INTERPRET") == "1",
                    reason="the interpreter has one tile; the GPU's configurations are read without it")
def test_flash_configurations_cover_every_autotune_config_of_each_kernel():
    from impls.attention import _triton_flash_kernels as flash

    pairs = kernels.flash_configurations()
    assert {id(f) for _, f, _ in pairs} == {id(c) for c in flash.FWD_CONFIGS}
    assert {id(b) for _, _, b in pairs} == {id(c) for c in flash.BWD_CONFIGS}
    assert len(flash.FWD_CONFIGS) > 1 and all("warps" in label for label, _, _ in pairs)


def test_check_only_records_each_check_and_no_timing(write_suite, tmp_path):
    suite = tiny_attention_suite(impls=["naive", "chunked", "test_wrong"],
                                 fixed={"batch": 1, "heads": 2, "head_dim": 16, "direction": "fwd_bwd"})
    assert cli.main(["run", str(write_suite(suite)), "--check-only", "--out", str(tmp_path / "out")]) == 0
    (run_dir,) = (tmp_path / "out").iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == 6
    for record in records:
        assert record["samples_ms"] == [] and record["memory_samples_bytes"] == []
        assert not {"median_ms", "first_call_ms", "peak_extra_bytes"} & set(record["metrics"])
        assert {"rel_err", "tolerance", "within_tolerance"} <= set(record["metrics"])
    statuses = {(r["label"], r["status"]) for r in records}
    assert statuses == {("naive", "ok"), ("chunked", "ok"), ("test_wrong", "wrong")}
    assert all("grad_rel_err" in r["metrics"] for r in records if r["label"] != "test_wrong")
    assert yaml.safe_load((run_dir / "suite.yaml").read_text())["measure"]["timed"] is False
