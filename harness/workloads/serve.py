"""The `serve` workload: a request trace served by one batching policy.

The impl is a model preset (family "model"). Policies: "static" (whole
batches, contiguous KV), "continuous" (iteration-level scheduling, contiguous
KV per sequence: max_len, or with `reserve: oracle` the request's own length)
and "paged" (continuous scheduling over a paged KV cache; a request is admitted
when blocks for its whole length are free, so it is never preempted). All three get the same KV memory budget, so the paged policy's
advantage is how many sequences fit. Recurrent and SSM models (constant-size
state, nothing to page) run static and continuous with at most
kv_budget_tokens // (prompt_max + output_max) sequences, the contiguous count.

One timed call serves the whole trace on the simulated clock (real model
calls, replayed arrivals); the metrics of the last call are the stats.
Correctness: a few requests' outputs must equal decoding them alone.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from harness.workloads.builder import ModelSize, build_model
from impls.decoding import generate
from impls.registry import Impl
from impls.serving import continuous, static
from impls.serving.kv_store import ContiguousKV
from impls.serving.paged import PagedKVCache
from impls.mixers.attention import Attention
from impls.serving.runner import AttentionRunner
from impls.serving.state_runner import StateRunner, StateStore
from impls.serving.trace import make_trace

CHECKED_REQUESTS = 3


class ServeParams(CommonParams):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)
    policy: Literal["static", "continuous", "paged"] = "continuous"
    rate: float = Field(20.0, gt=0)  # requests/s
    n_requests: int = Field(32, ge=1)
    arrival: Literal["poisson", "gamma"] = "poisson"
    burstiness: float = Field(1.0, gt=0)  # gamma: coefficient of variation of the gaps
    prompt_min: int = Field(8, ge=1)
    prompt_max: int = Field(64, ge=1)
    output_min: int = Field(4, ge=1)
    output_max: int = Field(64, ge=1)
    length_dist: Literal["fixed", "uniform", "lognormal", "lognormal_mean"] = "uniform"  # lengths in [min, max]
    prompt_mean: float | None = Field(None, gt=0)  # lognormal_mean: the published mean lengths ...
    output_mean: float | None = Field(None, gt=0)
    length_sigma: float = Field(1.0, gt=0)  # ... and the log-space spread
    reserve: Literal["max", "oracle"] = "max"  # contiguous stores: max_len per sequence, or its own length
    max_batch: int = Field(16, ge=1)
    kv_budget_tokens: int = Field(1024, ge=1)  # KV memory for all sequences, in token positions
    block_size: int = Field(16, ge=1)  # paged
    max_wait_s: float = Field(0.2, ge=0)  # static: how long a partial batch waits
    ttft_target_ms: float = Field(1000.0, gt=0)  # goodput: a request counts if it meets both targets
    itl_target_ms: float = Field(200.0, gt=0)


@register_workload
class Serve(Workload):
    name = "serve"
    families = {"model": ServeParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: ServeParams = case.typed
        if p.precision != "fp32":
            raise Skip("the serve workload runs fp32 only")
        max_len = p.prompt_max + p.output_max
        size = ModelSize(d_model=p.d_model, n_layers=p.n_layers, vocab_size=p.vocab_size, seed=p.seed)
        model = build_model(case, size, p.vocab_size, max_len).eval()
        runner = _runner(model, p)
        if p.length_dist == "lognormal_mean" and (p.prompt_mean is None or p.output_mean is None):
            raise Skip("length_dist lognormal_mean needs prompt_mean and output_mean")
        trace = make_trace(p.n_requests, p.rate, p.arrival, p.burstiness, (p.prompt_min, p.prompt_max),
                           (p.output_min, p.output_max), p.vocab_size, p.seed, p.length_dist,
                           (p.prompt_mean, p.output_mean), p.length_sigma)
        last: dict[str, Any] = {}

        def run():
            store = _store(runner, p, max_len, case.device)
            policy = static.serve if p.policy == "static" else continuous.serve
            extra = {"max_wait_s": p.max_wait_s} if p.policy == "static" else {}
            last["result"] = policy(runner, store, trace, max_batch=p.max_batch, **extra)

        def stats() -> dict[str, float]:
            if "result" not in last:
                run()
            return last["result"].metrics(p.ttft_target_ms / 1e3, p.itl_target_ms / 1e3)

        tokens = float(sum(r.output_len for r in trace))
        return Prepared(run=run, check=lambda: _check(model, trace, last, run), stats=stats,
                        work={"tokens": tokens})


def _runner(model, p: ServeParams) -> AttentionRunner | StateRunner:
    if isinstance(model.blocks[0].mixer, Attention):
        try:
            return AttentionRunner(model)
        except ValueError as why:
            raise Skip(str(why)) from None
    if p.policy == "paged":
        raise Skip(f"{model.config.mixer} keeps a constant-size state: no KV cache to page")
    try:
        return StateRunner(model)
    except ValueError as why:
        raise Skip(str(why)) from None


def _store(runner: AttentionRunner | StateRunner, p: ServeParams, max_len: int, device: str):
    if max_len > p.kv_budget_tokens:
        raise Skip(f"kv_budget_tokens={p.kv_budget_tokens} cannot hold one sequence of {max_len} tokens")
    if isinstance(runner, StateRunner):
        return StateStore(max_seqs=p.kv_budget_tokens // max_len)
    dims = (runner.n_layers, runner.kv_heads, runner.head_dim)
    if p.policy == "paged":
        return PagedKVCache(*dims, budget_tokens=p.kv_budget_tokens, block_size=p.block_size, device=device,
                            contiguous_max_len=max_len)
    return ContiguousKV(*dims, max_len=max_len, budget_tokens=p.kv_budget_tokens, device=device, reserve=p.reserve)


@torch.no_grad()
def _check(model, trace, last: dict[str, Any], run) -> dict[str, float]:
    """The first requests' served tokens vs decoding each alone (greedy)."""
    run()
    served = last["result"].results
    device = next(model.parameters()).device
    mismatched = sum(served[r.id].tokens != generate(model, r.prompt[None].to(device), r.output_len).tokens[0].tolist()
                     for r in trace[:CHECKED_REQUESTS])
    return {"mismatched_requests": float(mismatched), "within_tolerance": float(mismatched == 0)}
