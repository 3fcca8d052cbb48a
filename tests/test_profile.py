"""The profiled pass (harness.profile): its trace, its operator table, and time by category that
adds up to the pass and says what each kind of case spends its time on."""
from __future__ import annotations

import gzip
import json

import pytest

from harness import results, worker
from harness.profile import attribution, store
from harness.profile.categories import MATMUL, SOFTMAX
from harness.regression import remeasured
from tests.conftest import make_case

MEASURE = {"warmup": 1, "min_reps": 3, "max_reps": 10, "noise_target": 0.2, "max_time_s": 0.1, "threads": 1}


def _profiled(run_dir, case) -> dict:
    """Time and profile the case in this process, into run_dir/profile/<case id>/; its summary."""
    record = worker.execute(case, None, store.Request(store.case_dir(run_dir, case.id)))
    assert record.status == "ok", record.reason
    summary = store.summary(store.case_dir(run_dir, case.id))
    assert "error" not in summary, summary.get("detail")
    return summary


def _attention(impl: str = "naive", **params):
    params = {"seq_len": 256, "batch": 1, "heads": 2, "head_dim": 64, "causal": False} | params
    return make_case("op", "attention", impl, measure=MEASURE, **params)


def _matmul_and_softmax_share(summary: dict) -> float:
    spent = summary["categories_ms"]
    return (spent[MATMUL] + spent[SOFTMAX]) / sum(spent.values())


@pytest.fixture(scope="module")
def naive_profile(tmp_path_factory):
    """One profiled naive case. A descheduled operator on a loaded machine can break its sum or
    its shares, so the pass is repeated (up to three times) while either is off."""
    tmp_path = tmp_path_factory.mktemp("profile")
    case = _attention()
    summary = remeasured(lambda: _profiled(tmp_path, case),
                         lambda s: s["adds_up"] and _matmul_and_softmax_share(s) > 0.5)
    return tmp_path, case, summary


def test_trace_is_gzipped_chrome_json_with_the_operators(naive_profile):
    tmp_path, case, summary = naive_profile
    with gzip.open(store.case_dir(tmp_path, case.id) / summary["files"]["trace"], "rt") as handle:
        events = json.load(handle)["traceEvents"]
    names = {event.get("name") for event in events}
    assert len(events) > 10 and "aten::bmm" in names and "seqbench.profiled_pass" in names


def test_categories_add_up_to_the_profiled_call_within_tolerance(naive_profile):
    _, _, summary = naive_profile
    call_ms = summary["metrics"]["profile_call_ms"]
    attributed = sum(summary["categories_ms"].values())
    assert summary["adds_up"]
    assert abs(attributed - call_ms) <= attribution.SUM_TOLERANCE * call_ms + attribution.SUM_FLOOR_MS


def test_naive_attention_spends_most_of_its_time_in_matmul_and_softmax(naive_profile):
    _, _, summary = naive_profile
    spent = summary["categories_ms"]
    assert _matmul_and_softmax_share(summary) > 0.5, spent
    assert spent[MATMUL] > 0 and spent[SOFTMAX] > 0


def test_operator_table_loads_with_shapes_flops_and_allocations(naive_profile):
    tmp_path, case, _ = naive_profile
    table = results.operators(tmp_path)
    bmm = table[table["operator"] == "aten::bmm"]
    assert not bmm.empty and (bmm["flops"] > 0).all() and (bmm["bytes_allocated"] > 0).any()
    assert set(table.columns) >= {"case_id", "label", "operator", "category", "self_ms", "total_ms", "calls",
                                  "input_shapes", "flops", "bytes_allocated"}
    assert bmm["input_shapes"].str.contains("64").all()


def test_a_tiny_decode_loop_spends_a_large_share_between_operators(tmp_path):
    """Hundreds of tiny operators per token: the time between them (Python, dispatch) is a large
    share of the call. A descheduled operator on a loaded machine takes that share, so the
    pass is repeated (up to three times) before the test fails."""
    case = make_case("generate", "model", "transformer", measure=MEASURE, d_model=16, n_layers=1, vocab_size=32,
                     strategy="greedy", batch=1, prompt_len=4, new_tokens=8)
    summary = remeasured(lambda: _profiled(tmp_path, case), lambda s: s["metrics"]["profile_host_share"] > 0.25)
    assert summary["metrics"]["profile_host_share"] > 0.25, summary["categories_ms"]
    assert 0 < summary["metrics"]["profile_python_share"] < 1
    assert any("impls/" in hot["function"] for hot in summary["python_hottest"])


def test_the_profiled_pass_starts_after_every_timed_and_memory_sample(tmp_path, monkeypatch):
    """The profiler never runs inside a measured number: when its pass starts, the timing loop
    and the memory passes are over, and nothing is measured after it (checked by order, which
    load cannot disturb, rather than by comparing two noisy medians)."""
    from harness.profile import profiled_pass

    events: list[str] = []
    real_time, real_peak, real_pass = worker._time, worker.memory.median_peak, profiled_pass.run_and_save

    def timed(*args, **kwargs):
        events.append("time")
        return real_time(*args, **kwargs)

    def peak(*args, **kwargs):
        events.append("memory")
        return real_peak(*args, **kwargs)

    def profiled(case, run, median_ms, *args, **kwargs):
        events.append("profile")
        assert median_ms > 0  # handed the finished median, not a running one
        return real_pass(case, run, median_ms, *args, **kwargs)

    monkeypatch.setattr(worker, "_time", timed)
    monkeypatch.setattr(worker.memory, "median_peak", peak)
    monkeypatch.setattr(profiled_pass, "run_and_save", profiled)
    record = worker.execute(_attention("sdpa_math", seq_len=128), None, store.Request(tmp_path / "p"))
    assert record.status == "ok", record.reason
    assert events == ["time", "memory", "profile"]
    assert store.summary(tmp_path / "p")["metrics"]["profile_overhead_ratio"] > 0
