"""The generate and serve workloads at tiny sizes: they prepare, pass their own
correctness check and report the decoding / serving metrics."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_model

from harness import workloads
from harness.case import Case
from harness.errors import Skip
from harness.workloads import draft_pair
from impls import models
from tests.conftest import make_case, prepare

TINY = {"d_model": 32, "n_layers": 1, "vocab_size": 32}


def case(workload: str, impl: str, **params) -> Case:
    return make_case(workload, "model", impl, **(TINY | params))


def prepared(workload: str, impl: str, **params):
    return prepare(case(workload, impl, **params))


@pytest.mark.parametrize("options", [
    {"strategy": "greedy", "cache": "static"},
    {"strategy": "greedy", "weights": "int8", "precision": "bf16"},
    {"strategy": "beam", "width": 3, "batch": 2},
    {"strategy": "sampling", "top_k": 5, "cache": "none"},
    {"strategy": "speculative", "k": 2, "draft": "gru", "draft_d_model": 16},
    {"strategy": "speculative", "k": 2, "draft": "gru", "draft_d_model": 16, "batch": 3},
])
def test_generate_workload_checks_and_reports_decode_stats(options):
    p = prepared("generate", "transformer", prompt_len=6, new_tokens=5, **options)
    assert p.check()["within_tolerance"] == 1.0
    p.calls.start()
    p.run()
    p.calls.timed(1)
    per_call = p.calls.stop()
    stats = p.stats()
    assert stats["new_tokens"] == 5 and per_call["time_to_first_token_ms"][0] > 0
    assert per_call["itl_p50_ms"][0] <= per_call["itl_p99_ms"][0] and per_call["decode_tokens_per_s"][0] > 0
    if options["strategy"] == "speculative":
        assert 0 <= stats["acceptance_rate"] <= 1
    if options.get("weights") == "int8":  # bf16 activations: torch's int8 weight-only kernel on a CPU
        assert stats["int8_layers_weight_int8pack_mm"] > 0


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


@pytest.mark.parametrize("strategy", ["beam", "sampling", "speculative"])
def test_seq2seq_generate_workload_skips_strategies_other_than_greedy(strategy):
    c = make_case("generate", "seq2seq", "transformer", d_model=32, n_layers=1, strategy=strategy)
    with pytest.raises(Skip, match="greedy only"):
        prepare(c)


@pytest.mark.parametrize("encoder_cache", [True, False])
def test_seq2seq_generate_workload_counts_encoder_calls(encoder_cache):
    p = prepare(make_case("generate", "seq2seq", "transformer", d_model=32, n_layers=1, src_len=5, new_tokens=4,
                          encoder_cache=encoder_cache))
    assert p.check()["within_tolerance"] == 1.0
    assert p.stats()["encoder_calls"] == (1 if encoder_cache else 4)


def _train_tiny(preset="transformer", d_model=16, **params):
    return draft_pair.trained(preset, dict(d_model=d_model, n_layers=1, **params), steps=2, seed=0, seq_len=8,
                              batch=2)[0]


def test_trained_pair_loads_its_cache_strictly_and_retrains_a_file_that_does_not_fit(tiny_corpus, monkeypatch):
    first = _train_tiny()
    (cached,) = tiny_corpus.glob("*.safetensors")

    def no_training(*args, **kwargs):
        raise AssertionError("trained again although the cache fits")

    with monkeypatch.context() as m:
        m.setattr(draft_pair.training, "train", no_training)
        again = _train_tiny()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert again.head.weight is again.embed.weight  # the tied head is tied again after loading
    # a stale file under the same key (here: a wider model's weights) is not half-loaded
    save_model(models.build("transformer", vocab_size=first.embed.num_embeddings, d_model=24, n_layers=1),
               str(cached))
    with pytest.warns(UserWarning, match="retraining and overwriting"):
        retrained = _train_tiny()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), retrained.state_dict().values()))
    with monkeypatch.context() as m:  # and the overwritten file now fits
        m.setattr(draft_pair.training, "train", no_training)
        _train_tiny()


def test_trained_pair_cache_is_keyed_by_the_whole_config(tiny_corpus):
    _train_tiny()
    _train_tiny(heads=2)  # a preset param, not a size: still a different model and file
    _train_tiny(d_model=8)
    assert len(list(tiny_corpus.glob("*.safetensors"))) == 3
