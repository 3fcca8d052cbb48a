"""The metrics catalogue: one entry per metric, read by worker, report, compare and claims."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import metrics
from harness.compare import compare_records
from harness.errors import UserError
from tests.conftest import TINY_MEASURE, make_case

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def test_every_metric_in_the_kept_reference_runs_is_catalogued():
    names = {name for path in REFERENCE.glob("*/records.jsonl") for line in path.read_text().splitlines()
             for name in json.loads(line).get("metrics", {})}
    assert names, "no reference runs to read"
    metrics.check(names)


@pytest.mark.parametrize("name", ["val_ppl_8x", "ppl_ratio_2x", "ttft_p99_ms", "itl_p50_ms", "int8_layers_int_mm"])
def test_a_family_of_names_is_catalogued_by_its_pattern(name):
    assert metrics.get(name).name != name  # the pattern's entry, e.g. val_ppl_<n>x


def test_an_unknown_metric_is_an_error_naming_the_catalogue_and_a_close_name():
    with pytest.raises(metrics.UnknownMetric, match=r"'median_sm' is not in the metrics catalogue.*median_ms"):
        metrics.get("median_sm")


def test_compare_refuses_a_record_metric_the_catalogue_does_not_know():
    record = {"case_id": "a", "label": "x", "params": {}, "axes": [], "status": "ok",
              "metrics": {"median_ms": 1.0, "made_up_speed": 2.0}, "samples_ms": []}
    with pytest.raises(UserError, match="made_up_speed"):
        compare_records([record], [dict(record)])


def test_descriptive_metrics_are_not_judged_and_rates_of_the_median_share_its_samples():
    assert not metrics.judged_by_default("param_count") and metrics.judged_by_default("median_ms")
    assert metrics.per_median_call("tflops") and not metrics.per_median_call("median_ms")
    assert metrics.is_speed("makespan_s") and not metrics.is_speed("val_loss")


def test_a_case_whose_workload_makes_an_unknown_metric_is_an_error_naming_it(monkeypatch):
    from harness import worker
    from harness.workloads.op_attention import AttentionOp

    real = AttentionOp.prepare

    def prepare(self, case, impl):
        prepared = real(self, case, impl)
        prepared.stats = lambda: {"made_up_speed": 1.0}
        return prepared

    monkeypatch.setattr(AttentionOp, "prepare", prepare)
    record = worker.execute(make_case("op", "attention", "naive", seq_len=8, heads=1, head_dim=8,
                                      measure=TINY_MEASURE))
    assert record.status == "error" and "made_up_speed" in record.reason and "catalogue" in record.reason
