"""The generate and serve workloads at tiny sizes: they prepare, pass their own
correctness check and report the decoding / serving metrics."""
from __future__ import annotations

import pytest

from harness import workloads
from harness.case import Case
from harness.errors import Skip
from impls import registry

TINY = {"d_model": 32, "n_layers": 1, "vocab_size": 32}


def case(workload: str, impl: str, **params) -> Case:
    params = TINY | params
    return Case(suite="test", workload=workload, family="model", impl=impl, label=impl, params=params,
                impl_params=(), axes=(), device="cpu")


def prepared(workload: str, impl: str, **params):
    c = case(workload, impl, **params)
    return workloads.get(workload).prepare(c, registry.get("model", impl))


@pytest.mark.parametrize("options", [
    {"strategy": "greedy", "cache": "static"},
    {"strategy": "greedy", "weights": "int8", "precision": "bf16"},
    {"strategy": "beam", "width": 3, "batch": 2},
    {"strategy": "sampling", "top_k": 5, "cache": "none"},
    {"strategy": "speculative", "k": 2, "draft": "gru", "draft_d_model": 16},
])
def test_generate_workload_checks_and_reports_decode_stats(options):
    p = prepared("generate", "transformer", prompt_len=6, new_tokens=5, **options)
    assert p.check()["within_tolerance"] == 1.0
    p.run()
    stats = p.stats()
    assert stats["new_tokens"] == 5 and stats["tokens_per_s"] > 0 and stats["time_to_first_token_ms"] > 0
    if options["strategy"] == "speculative":
        assert 0 <= stats["acceptance_rate"] <= 1


def test_generate_workload_skips_batched_speculative_decoding():
    with pytest.raises(Skip):
        prepared("generate", "transformer", strategy="speculative", batch=2)


def test_serve_workload_checks_against_decoding_alone_and_reports_latency():
    p = prepared("serve", "transformer", policy="paged", n_requests=4, rate=50.0, prompt_min=2, prompt_max=6,
                 output_min=2, output_max=4, kv_budget_tokens=64, block_size=4)
    assert p.check()["within_tolerance"] == 1.0
    stats = p.stats()
    assert {"output_tokens_per_s", "ttft_p99_ms", "itl_p50_ms", "kv_waste", "goodput_requests_per_s"} <= set(stats)


def test_serve_workload_serves_recurrent_models_but_does_not_page_them():
    p = prepared("serve", "gru", policy="continuous", n_requests=3, rate=50.0, prompt_min=2, prompt_max=6,
                 output_min=2, output_max=4, kv_budget_tokens=64)
    assert p.check()["within_tolerance"] == 1.0
    assert p.stats()["kv_waste"] == 0.0  # a constant-size state is all used
    with pytest.raises(Skip):
        prepared("serve", "gru", policy="paged", n_requests=2)


@pytest.mark.parametrize("encoder_cache", [True, False])
def test_seq2seq_generate_workload_counts_encoder_calls(encoder_cache):
    c = Case(suite="test", workload="generate", family="seq2seq", impl="transformer", label="t",
             params={"d_model": 32, "n_layers": 1, "src_len": 5, "new_tokens": 4, "encoder_cache": encoder_cache},
             impl_params=(), axes=(), device="cpu")
    p = workloads.get("generate").prepare(c, registry.get("seq2seq", "transformer"))
    assert p.check()["within_tolerance"] == 1.0
    assert p.stats()["encoder_calls"] == (1 if encoder_cache else 4)
