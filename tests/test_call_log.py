"""Per-call samples of the timed calls only: the timer says which calls it timed, the
generate workload records TTFT / inter-token latency / decode tokens/s from every timed
call with their raw samples, and compare judges them from those samples like median_ms."""
from __future__ import annotations

import statistics

import numpy as np

from harness import compare, worker
from harness.measure import timer
from harness.measure.calls import CallLog
from tests.conftest import TINY_MEASURE, make_case

PER_CALL = ("time_to_first_token_ms", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms", "decode_tokens_per_s")


def test_the_timer_hands_the_call_log_only_the_calls_it_timed():
    log = CallLog(summarize=lambda index: {"index": float(index)})
    made = []

    def fn():
        made.append(len(made) + 1)
        log.log(made[-1])

    log.start()
    # a 0.5 ms call makes CPU blocks of 20 calls, each block warmed up by 2 untimed ones
    settings = timer.TimerSettings(min_reps=3, max_reps=3, noise_target=0.5, max_time_s=60)
    samples = timer.measure(fn, "cpu", settings, call_s=5e-4, timed_calls=log.timed)
    kept = log.stop()["index"]
    assert len(samples) == 3 and len(made) == 66
    assert kept == [float(i) for block in (0, 22, 44) for i in range(block + 3, block + 23)]


def test_nothing_is_logged_outside_the_timing_loop():
    log = CallLog(summarize=lambda value: {"v": value})
    log.log(1.0)  # a warm-up call, before start
    log.start()
    log.log(2.0)
    log.timed(1)
    assert log.stop() == {"v": [2.0]}
    log.log(3.0)  # a memory pass, after stop
    assert log.stop() == {}


def test_a_generate_case_records_every_timed_calls_latencies_with_their_samples():
    case = make_case("generate", "model", "transformer", d_model=32, n_layers=1, vocab_size=32, prompt_len=6,
                     new_tokens=5, measure={**TINY_MEASURE, "min_reps": 6, "max_reps": 6, "max_time_s": 5})
    record = worker.execute(case)
    assert record.status == "ok", record.reason
    assert set(PER_CALL) <= set(record.metric_samples)
    for name in PER_CALL:
        samples = record.metric_samples[name]
        assert len(samples) >= record.timing.summary.n_samples  # one per timed call
        assert record.metrics[name] == statistics.median(samples)
    assert record.to_json()["metric_samples"]["itl_p99_ms"] == list(record.metric_samples["itl_p99_ms"])
    assert "energy_j_per_call" in record.metrics or record.metrics["energy_not_measured"]
    assert record.metrics["load_ms"] > 0


def _record(ttft_samples: list[float], noisy: bool = False) -> dict:
    return {"case_id": "c", "label": "x", "status": "ok", "device": "cpu", "params": {}, "axes": [],
            "metrics": {"time_to_first_token_ms": float(np.median(ttft_samples)), "noisy": noisy},
            "samples_ms": [], "metric_samples": {"time_to_first_token_ms": ttft_samples}}


def test_compare_judges_time_to_first_token_from_its_per_call_samples():
    rng = np.random.default_rng(0)
    base = list(10 + rng.random(12))
    slower = list(20 + rng.random(12))
    pair = compare.judge(_record(base), _record(slower), "time_to_first_token_ms")
    assert pair.verdict == "slower" and pair.p_value is not None
    same = compare.judge(_record(base), _record(list(base)), "time_to_first_token_ms")
    assert same.verdict == "same"
    without = _record(base)
    del without["metric_samples"]
    assert compare.judge(without, _record(slower), "time_to_first_token_ms").verdict == "unclear"


def test_latencies_are_the_calls_own_percentiles_and_decode_rate():
    from impls.decoding.stats import GenerationStats

    gaps_s = [0.001 * (i + 1) for i in range(100)]  # 1..100 ms
    stats = GenerationStats(time_to_first_token_s=0.5, per_token_latency_s=gaps_s, total_s=0.5 + sum(gaps_s),
                            new_tokens=101, batch=2)
    out = stats.latencies()
    assert out["time_to_first_token_ms"] == 500.0
    assert abs(out["itl_p50_ms"] - 50.5) < 1e-9 and abs(out["itl_p99_ms"] - 99.01) < 1e-9
    assert abs(out["decode_tokens_per_s"] - 2 * 100 / sum(gaps_s)) < 1e-9  # both rows, after the first token
    assert GenerationStats(total_s=1.0, new_tokens=4).latencies() == {}  # no stamps (transformers' beam)


def test_claims_resample_a_metrics_own_per_call_samples():
    import pandas as pd

    from harness.claims import interval

    row = pd.Series({"itl_p99_ms": 5.0, "samples_itl_p99_ms": [4.0, 5.0, 5.0, 6.0, 5.0, 4.5, 5.5],
                     "samples_ms": [100.0] * 7})
    estimate = interval.column_draws(row, "itl_p99_ms", interval.generator()).estimate()
    assert estimate.has_interval and 4.0 <= estimate.low < 5.0 < estimate.high <= 6.0
