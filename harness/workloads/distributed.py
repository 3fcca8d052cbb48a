"""The `distributed` workload: one call of an impl split over `world_size` processes, one
per rank of a torch.distributed group (gloo on the CPU, NCCL on GPUs, one GPU a rank).

The ranks (harness.distributed) are started once per world size and reused by the cases
after; the worker times each call from outside (its samples_ms: the slowest rank plus the
command's round trip), and each rank times its own call, so `rank_max_ms` (the slowest
rank, per call) and `rank_min_ms` are kept with their samples. Each rank checks its part of
the output against the same part of the single-process fp64 result; peak memory is each
rank's own (harness.measure.memory in the rank): `peak_extra_bytes` is the largest over the
ranks, per pass. Communication per call and rank: `comm_bytes_counted` (the payload the impl
handed to torch.distributed, counted by impls.distributed.comm), `comm_bytes_expected` (the
algorithm's own derivation) and, on the CPU, `comm_bytes_measured` (what the rank's process
wrote to its sockets during the call, from /proc/self/io), each the largest over the ranks.
Each rank runs `measure.threads` threads (default 1: the ranks share the machine's cores);
`threads` in the record is that per-rank figure.
"""
from __future__ import annotations

import statistics
from typing import Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.distributed import group as groups
from harness.errors import Skip
from harness.measure.calls import CallLog
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from impls import registry
from impls.distributed.problem import Shape
from impls.precision import ATTENTION_TOLERANCE, input_dtype
from impls.registry import Impl

CHECK_MAX_PAIRS = 1 << 22  # (query, key) pairs x heads of the fp64 check, as the op workload's


class DistributedParams(CommonParams):
    world_size: int = Field(2, ge=1)
    batch: int = Field(1, ge=1)
    heads: int = Field(8, ge=1)
    seq_len: int = Field(1024, ge=1)
    head_dim: int = Field(64, ge=1)
    causal: bool = False
    direction: Literal["fwd"] = "fwd"


@register_workload
class DistributedWorkload(Workload):
    name = "distributed"
    families = {"distributed": DistributedParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: DistributedParams = case.typed
        shape = Shape(p.batch, p.heads, p.seq_len, p.head_dim, p.causal, p.world_size)
        _refuse(impl, shape, case)
        threads = case.measure.threads or 1  # per rank: P ranks share the machine's cores
        ranks = groups.shared(p.world_size, case.device, threads)
        dtype = input_dtype(p.precision, case.device)
        ranks.call("prepare", impl=impl.name, shape=_sizes(shape), check_shape=_sizes(check_shape(shape, impl, case)),
                   impl_kwargs=case.impl_kwargs(), dtype=str(dtype).removeprefix("torch."), seed=p.seed)
        calls = CallLog(summarize=lambda times: {"rank_max_ms": max(times), "rank_min_ms": min(times)})

        def run() -> None:
            calls.log([answer["ms"] for answer in ranks.call("run")])

        element = torch.empty((), dtype=dtype).element_size()
        expected = impl.fn.expected_bytes(shape, element, **case.impl_kwargs())
        return Prepared(run=run, check=lambda: _check(ranks, p.precision, shape), calls=calls,
                        stats=lambda: _communication(ranks.call("run"), expected) | {"threads": float(threads)},
                        memory=lambda passes: _memory(ranks, passes),
                        work={"flops": impl.fn.flops(shape)})


def _refuse(impl: Impl, shape: Shape, case: Case) -> None:
    reason = impl.fn.refusal(shape, **case.impl_kwargs())
    if reason:
        raise Skip(reason)
    if case.device == "cuda" and shape.world > torch.cuda.device_count():
        raise Skip(f"world_size={shape.world} needs {shape.world} GPUs, one a rank; this machine has "
                   f"{torch.cuda.device_count()}")


def _sizes(shape: Shape) -> dict[str, int | bool]:
    return {"batch": shape.batch, "heads": shape.heads, "seq_len": shape.seq_len, "head_dim": shape.head_dim,
            "causal": shape.causal}


def check_shape(shape: Shape, impl: Impl, case: Case) -> Shape:
    """The case at batch 1, its sequence halved until the fp64 check is small enough, never
    to a length the impl refuses (every rank must still hold whole chunks)."""
    small = Shape(1, shape.heads, shape.seq_len, shape.head_dim, shape.causal, shape.world)
    while small.seq_len ** 2 * small.heads > CHECK_MAX_PAIRS:
        shorter = Shape(1, small.heads, small.seq_len // 2, small.head_dim, small.causal, small.world)
        if small.seq_len % 2 or shorter.seq_len < 2 * shape.world or impl.fn.refusal(shorter, **case.impl_kwargs()):
            break
        small = shorter
    return small


def _check(ranks: groups.RankGroup, precision: str, shape: Shape) -> dict[str, float]:
    errors = ranks.call("check")
    max_abs = max(e["max_abs_err"] for e in errors)
    scale = max(e["scale"] for e in errors)
    rel = max_abs / scale if scale > 0 else max_abs
    tolerance = ATTENTION_TOLERANCE[precision]
    return {"max_abs_err": max_abs, "rel_err": rel, "tolerance": tolerance, "within_tolerance": float(rel <= tolerance)}


def _communication(answers: list[dict], expected: float) -> dict[str, float]:
    """What one call communicated, the busiest rank's: counted, expected and (CPU) measured."""
    result = {"comm_bytes_counted": float(max(a["counted"] for a in answers)), "comm_bytes_expected": expected,
              "comm_calls": float(max(a["calls"] for a in answers))}
    measured = [a["measured"] for a in answers if a["measured"] is not None]
    if len(measured) == len(answers):
        result["comm_bytes_measured"] = float(max(measured))
    return result


def _memory(ranks: groups.RankGroup, passes: int) -> tuple[dict[str, float], list[float]]:
    """Each pass: every rank's own peak; the record keeps the median over passes of the largest
    rank's figures, every pass's largest peak_extra_bytes, and the smallest rank's median."""
    rounds = [ranks.call("memory") for _ in range(passes)]
    if not all(rounds[0]):
        return {}, []  # no per-pass high-water mark on this OS
    largest = [max(r, key=lambda peak: peak["peak_extra_bytes"]) for r in rounds]
    figures = {key: statistics.median(peak[key] for peak in largest) for key in largest[0]}
    figures["rank_min_peak_extra_bytes"] = statistics.median(min(p["peak_extra_bytes"] for p in r) for r in rounds)
    return figures, [peak["peak_extra_bytes"] for peak in largest]
