"""Static batching: wait for a full batch (or the last requests, or a timeout),
prefill it, then decode it in lockstep until its longest output is done.

Sequences that finish early stay in the batch (their slots are wasted), and
nobody joins until the whole batch ends: the baseline continuous batching beats.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import torch

from impls.serving.continuous import _total_len
from impls.serving.engine import Clock, Memory, RequestResult, ServeResult, arrivals, emit
from impls.serving.runner import AttentionRunner
from impls.serving.trace import Request


def serve(runner: AttentionRunner, store: Any, trace: list[Request], max_batch: int = 16,
          max_wait_s: float = 0.5) -> ServeResult:
    """Serve `trace` in static batches of up to `max_batch`; a partial batch starts
    once its oldest request has waited `max_wait_s`."""
    clock, memory = Clock(), Memory(store)
    results = {r.id: RequestResult(r.id, r.arrival_s) for r in trace}
    waiting: deque[Request] = deque()
    next_index, peak_batch = 0, 0
    while next_index < len(trace) or waiting:
        new, next_index = arrivals(trace, clock, next_index)
        waiting.extend(new)
        full = len(waiting) >= max_batch
        timed_out = waiting and clock.now >= waiting[0].arrival_s + max_wait_s
        if not (full or timed_out or (waiting and next_index == len(trace))):
            upcoming = [trace[next_index].arrival_s] if next_index < len(trace) else []
            deadline = [waiting[0].arrival_s + max_wait_s] if waiting else []
            clock.wait_until(min(upcoming + deadline))
            continue
        batch = []
        while waiting and len(batch) < max_batch and store.can_admit(_total_len(waiting[0])):
            batch.append(waiting.popleft())
            store.add(batch[-1].id, _total_len(batch[-1]))
        if not batch:
            raise MemoryError(f"request {waiting[0].id} needs more KV memory than the store has")
        peak_batch = max(peak_batch, len(batch))
        _run_batch(runner, store, batch, results, clock, memory)
    return ServeResult(results, clock.busy, int(memory.peak), memory.reserved_steps, memory.used_steps, peak_batch,
                       int(memory.peak_contiguous), memory.batched, memory.decode_calls)


def _run_batch(runner, store, batch: list[Request], results: dict[int, RequestResult], clock: Clock,
               memory: Memory) -> None:
    last = {}
    for request in batch:  # prompts of different lengths: prefilled one by one
        logits = clock.run(lambda: runner.prefill(store, request.id, request.prompt))
        memory.sample()
        last[request.id] = int(logits[-1].argmax())
    for request in batch:  # the batch's first tokens are all returned when its prefill ends
        results[request.id].tokens.append(last[request.id])
        results[request.id].token_times_s.append(clock.now)
    ids = [r.id for r in batch]
    for _ in range(max(r.output_len for r in batch) - 1):
        # finished sequences still run and write KV (static batching's waste); the store counts
        # only the positions a sequence was admitted for as used, the rest as reserved-but-idle
        active = [i for i, r in zip(ids, batch) if len(results[i].tokens) < r.output_len]
        logits = clock.run(lambda: runner.decode(store, ids, torch.tensor([last[i] for i in ids])))
        memory.sample()
        memory.decoded(len(active))  # finished rows ride along: they are not batched requests
        for row, i in enumerate(ids):
            if i in active:
                last[i] = emit(results[i], logits[row], clock.now)
    for i in ids:
        store.release(i)
