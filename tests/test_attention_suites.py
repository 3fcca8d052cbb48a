"""The long-sequence, GQA and scaling suites load, expand, and skip impossible modes."""
from __future__ import annotations

import pytest

from harness import suite as suites


@pytest.mark.parametrize("name", ["attention_long", "attention_gqa", "scaling_cpu"])
def test_suite_loads_and_expands(name):
    suite = suites.load(f"suites/{name}.yaml")
    cases = suites.expand(suite, "cpu")
    assert cases and {c.label for c in cases} == {e.shown for e in suite.entries}


def test_long_suite_runs_each_impl_only_in_modes_it_defines():
    suite = suites.load("suites/attention_long.yaml")
    runnable = {(c.impl, c.params["causal"]) for c in suites.expand(suite, "cpu")
                if suites.constraint_failure(suite, c) is None}
    assert ("linformer", False) in runnable and ("linformer", True) not in runnable
    assert ("sparse_strided", True) in runnable and ("sparse_strided", False) not in runnable
    assert {("chunked", False), ("chunked", True), ("local", True)} <= runnable


def test_gqa_suite_sweeps_kv_heads_down_to_one():
    suite = suites.load("suites/attention_gqa.yaml")
    cases = suites.expand(suite, "cpu")
    assert {c.params["kv_heads"] for c in cases} == {16, 8, 4, 2, 1}
    assert all(c.params["heads"] == 16 for c in cases)
