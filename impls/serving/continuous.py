"""Continuous (iteration-level) batching, as in Orca (Yu et al., OSDI 2022).

At every iteration finished sequences leave, waiting requests join as far as
the batch limit and the KV store allow (each joiner is prefilled alone, which
emits its first token), then every running sequence advances one token in one
batched decode call. With a PagedKVCache store this is the paged policy; with
a ContiguousKV store every sequence reserves max_len up front.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import torch

from impls.serving.engine import Clock, Memory, RequestResult, ServeResult, arrivals, emit
from impls.serving.runner import AttentionRunner
from impls.serving.trace import Request


def serve(runner: AttentionRunner, store: Any, trace: list[Request], max_batch: int = 16) -> ServeResult:
    """Serve `trace` greedily; every request gets exactly output_len tokens."""
    clock, memory = Clock(), Memory(store)
    results = {r.id: RequestResult(r.id, r.arrival_s) for r in trace}
    waiting: deque[Request] = deque()
    running: dict[int, Request] = {}
    last: dict[int, int] = {}
    next_index, peak_batch = 0, 0
    while next_index < len(trace) or waiting or running:
        new, next_index = arrivals(trace, clock, next_index)
        waiting.extend(new)
        if not waiting and not running:
            clock.wait_until(trace[next_index].arrival_s)
            continue
        while waiting and len(running) < max_batch and store.can_admit(_total_len(waiting[0])):
            request = waiting.popleft()
            store.add(request.id, _total_len(request))
            logits = clock.run(lambda: runner.prefill(store, request.id, request.prompt))
            memory.sample()
            last[request.id] = emit(results[request.id], logits[-1], clock.now)
            running[request.id] = request
        _retire(running, results, store)
        if not running:
            if waiting:
                raise MemoryError(f"request {waiting[0].id} needs more KV memory than the store has")
            continue
        ids = list(running)
        peak_batch = max(peak_batch, len(ids))
        logits = clock.run(lambda: runner.decode(store, ids, torch.tensor([last[i] for i in ids])))
        memory.sample()
        memory.decoded(len(ids))
        for row, i in enumerate(ids):
            last[i] = emit(results[i], logits[row], clock.now)
        _retire(running, results, store)
    return ServeResult(results, clock.busy, int(memory.peak), memory.reserved_steps, memory.used_steps, peak_batch,
                       int(memory.peak_contiguous), memory.batched, memory.decode_calls)


def _total_len(request: Request) -> int:
    """KV positions a request needs: its prompt and every output token but the last."""
    return len(request.prompt) + request.output_len - 1


def _retire(running: dict[int, Request], results: dict[int, RequestResult], store: Any) -> None:
    for i in [i for i, r in running.items() if len(results[i].tokens) >= r.output_len]:
        del running[i]
        store.release(i)
