"""The long-sequence, GQA and scaling suites load, expand, and skip impossible modes."""
from __future__ import annotations

import pytest

from harness import suite as suites, workloads
from harness.errors import Skip
from impls import registry


@pytest.mark.parametrize("name", ["attention_long", "attention_gqa", "scaling_cpu"])
def test_suite_loads_and_expands(name):
    suite = suites.load(f"suites/{name}.yaml")
    cases = suites.expand(suite, "cpu")
    assert cases and {c.label for c in cases} == {e.shown for e in suite.entries}


def test_long_suite_skips_modes_an_impl_does_not_define():
    suite = suites.load("suites/attention_long.yaml")
    skipped = {}
    for case in suites.expand(suite, "cpu"):
        try:
            workloads.get("op").prepare(case, registry.get("attention", case.impl))
        except Skip as why:
            skipped[(case.impl, case.params["causal"])] = str(why)
    assert "no causal form" in skipped[("linformer", True)]
    assert "causal attention only" in skipped[("sparse_strided", False)]
    assert not {k for k in skipped if k[0] in ("chunked", "local", "naive")}


def test_gqa_suite_sweeps_kv_heads_down_to_one():
    suite = suites.load("suites/attention_gqa.yaml")
    cases = suites.expand(suite, "cpu")
    assert {c.params["kv_heads"] for c in cases} == {16, 8, 4, 2, 1}
    assert all(c.params["heads"] == 16 for c in cases)


def test_gqa_suite_puts_every_exact_impl_side_by_side_in_fp32_on_a_cpu():
    suite = suites.load("suites/attention_gqa.yaml")
    names = {e.name for e in suite.entries}
    assert {"naive", "sdpa_math", "sdpa_flash", "sdpa_efficient", "chunked", "triton_flash", "flash_attn",
            "flex"} <= names
    assert all(registry.get("attention", n).exact for n in names)
    cpu = suites.expand(suites.for_device(suite, "cpu"), "cpu")
    assert {c.params["precision"] for c in cpu} == {"fp32"}  # fp16 matmul is emulated on a CPU
    assert max(c.params["seq_len"] for c in cpu) <= 1024
    assert {c.params["precision"] for c in suites.expand(suites.for_device(suite, "cuda"), "cuda")} == {"fp16"}
