"""Distributed impls (impls/distributed) on real gloo groups of 2 and 4 CPU processes,
against the single-process exact result, and the distributed workload end to end.

A group's start-up (one torch import, then forks) is the slow part, so each world size is
started once for the module and every check runs on it; the shapes are tiny.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from harness.distributed import group as groups
from harness.worker import execute
from impls import registry
from impls.distributed import layout
from impls.distributed.megatron import ALL_REDUCES_PER_LAYER
from impls.distributed.problem import Shape
from impls.precision import ATTENTION_TOLERANCE
from tests.conftest import make_case

IMPLS = [("ring_attention", {"layout": "zigzag"}), ("ring_attention", {"layout": "contiguous"}),
         ("ulysses_attention", {}), ("megatron_layer", {})]
SHAPES = [dict(batch=2, heads=4, seq_len=16, head_dim=8), dict(batch=1, heads=8, seq_len=24, head_dim=4)]


@pytest.fixture(scope="module")
def started():
    """Both groups, from the shared ones a worker's cases use (started here if no earlier test
    left them up: a start is a torch import, seconds)."""
    started = {world: groups.shared(world, "cpu", 1) for world in (2, 4)}
    yield started
    started[4].close()


@pytest.fixture
def two_ranks(started):
    return started[2]


@pytest.fixture
def four_ranks(started):
    return started[4]


def _errors(ranks, impl: str, kwargs: dict, shape: dict, dtype: str, seed: int = 0) -> tuple[float, list[dict]]:
    """Relative error of every rank's part against the fp64 single-process result, and each
    rank's answer to one timed call."""
    ranks.call("prepare", impl=impl, shape=shape, check_shape=shape, impl_kwargs=kwargs, dtype=dtype, seed=seed)
    checks = ranks.call("check")
    return max(c["max_abs_err"] for c in checks) / max(c["scale"] for c in checks), ranks.call("run")


def _matches_exact_result(ranks) -> None:
    world = ranks.world
    for seed, shape in enumerate(SHAPES):
        for impl, kwargs in IMPLS:
            for causal in (False, True):
                sizes = shape | {"causal": causal}
                error, runs = _errors(ranks, impl, kwargs, sizes, "float64", seed)
                assert error < 1e-12, (impl, kwargs, sizes, world, error)
                expected = registry.get("distributed", impl).fn.expected_bytes(Shape(**sizes, world=world), 8, **kwargs)
                assert [r["counted"] for r in runs] == [expected] * world, (impl, kwargs, world)
                assert all(r["measured"] >= r["counted"] for r in runs)  # the payload and gloo's headers
    for precision, dtype in (("fp32", "float32"), ("bf16", "bfloat16")):
        for impl, kwargs in IMPLS:
            for causal in (False, True):
                error, _ = _errors(ranks, impl, kwargs, SHAPES[0] | {"causal": causal}, dtype)
                assert error <= ATTENTION_TOLERANCE[precision], (impl, kwargs, precision, causal, error)


def test_two_ranks_match_the_single_process_result_and_count_their_bytes(two_ranks):
    _matches_exact_result(two_ranks)


def test_four_ranks_match_the_single_process_result_and_count_their_bytes(four_ranks):
    _matches_exact_result(four_ranks)


def test_megatron_layer_all_reduces_twice_per_forward(four_ranks):
    shape = SHAPES[0] | {"causal": True}
    _, runs = _errors(four_ranks, "megatron_layer", {}, shape, "float32")
    activations = shape["batch"] * shape["seq_len"] * shape["heads"] * shape["head_dim"] * 4
    assert [(r["calls"], r["counted"]) for r in runs] == [(ALL_REDUCES_PER_LAYER, 2 * activations)] * 4
    # gloo's ring all-reduce puts 2 (P - 1) / P of the payload on the wire
    assert all(r["measured"] >= 1.5 * r["counted"] for r in runs)


def test_a_failing_rank_ends_the_group_with_its_message(four_ranks):
    with pytest.raises(groups.RankError, match=r"rank \d: .*unknown distributed impl"):
        four_ranks.call("prepare", impl="no_such_impl", shape=SHAPES[0] | {"causal": False},
                        check_shape=SHAPES[0] | {"causal": False}, impl_kwargs={}, dtype="float32", seed=0)
    assert not four_ranks.alive
    with pytest.raises(groups.RankError, match="closed"):
        four_ranks.call("run")


def test_a_rank_that_dies_ends_its_group():
    ranks = groups.RankGroup(2, "cpu", 1)
    os.kill(ranks.pids[1], signal.SIGKILL)
    with pytest.raises(groups.RankError, match=r"rank 1 died \(signal 9\)"):
        for _ in range(50):  # the server notices within REAP_S; until then the ranks may still answer
            ranks.call("release")
            time.sleep(0.1)
    assert not ranks.alive


def test_distributed_case_records_per_rank_time_memory_and_bytes(two_ranks):
    measure = {"warmup": 0, "min_reps": 2, "max_reps": 3, "max_time_s": 0.05, "memory_passes": 2, "threads": 1}
    case = make_case("distributed", "distributed", "ring_attention", measure=measure, world_size=2, batch=1,
                     heads=2, seq_len=64, head_dim=8, causal=True)
    record = execute(case)
    assert record.status == "ok", record.reason
    metrics = record.all_metrics()
    assert metrics["within_tolerance"] == 1.0 and metrics["rel_err"] < 1e-4
    assert metrics["comm_bytes_counted"] == metrics["comm_bytes_expected"] == 2 * 2 * 32 * 8 * 4
    assert metrics["rank_max_ms"] >= metrics["rank_min_ms"] > 0 and metrics["threads"] == 1
    assert len(record.memory_samples_bytes) == 2 and metrics["peak_extra_bytes"] >= metrics["rank_min_peak_extra_bytes"]
    assert groups.shared(2, "cpu", 1) is two_ranks  # the case reused the module's group


def test_distributed_case_refuses_heads_that_do_not_split():
    case = make_case("distributed", "distributed", "ulysses_attention", world_size=4, heads=6, seq_len=64)
    record = execute(case)
    assert record.status == "skipped" and "heads=6" in record.reason


@pytest.mark.parametrize("world", [2, 3, 4])
def test_zigzag_gives_every_rank_the_same_causal_work(world):
    def pairs(rank: int, chosen: str) -> int:  # (query chunk, key chunk) pairs computed, over the ring
        mine = layout.chunks_of(rank, world, chosen)
        return sum(k <= q for holder in range(world) for k in layout.chunks_of(holder, world, chosen) for q in mine)

    assert len({pairs(rank, "zigzag") for rank in range(world)}) == 1
    assert pairs(world - 1, "contiguous") == world * pairs(0, "contiguous")
    x = torch.arange(4 * world).reshape(1, 1, -1, 1)
    parts = [layout.shard(x, rank, world, "zigzag") for rank in range(world)]
    assert sorted(torch.cat(parts, dim=2).flatten().tolist()) == list(range(4 * world))
