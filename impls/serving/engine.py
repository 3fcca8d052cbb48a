"""The simulated clock and what a server reports.

Servers really run the model (on whatever device it lives) and measure each
model call's wall time; the clock advances by that time, and jumps ahead to
the next arrival when the server is idle. Arrivals are replayed against this
clock, so queueing delays come from real compute times without waiting for a
real trace's gaps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from impls.serving.trace import Request


@dataclass
class RequestResult:
    id: int
    arrival_s: float
    tokens: list[int] = field(default_factory=list)
    token_times_s: list[float] = field(default_factory=list)  # clock time each token was emitted

    @property
    def ttft_s(self) -> float:
        return self.token_times_s[0] - self.arrival_s

    @property
    def inter_token_s(self) -> list[float]:
        t = self.token_times_s
        return [b - a for a, b in zip(t, t[1:])]

    @property
    def finish_s(self) -> float:
        return self.token_times_s[-1]


@dataclass
class ServeResult:
    results: dict[int, RequestResult]
    busy_s: float  # clock time spent running the model
    peak_reserved_bytes: int  # KV memory held at its peak
    reserved_byte_steps: float  # sum over model calls of KV bytes held ...
    used_byte_steps: float  # ... and of bytes holding real tokens
    peak_batch: int
    peak_contiguous_bytes: int = 0  # paged: what max_len-per-sequence buffers would have held at peak
    batched_sequences: int = 0  # sequences over all decode calls ...
    decode_calls: int = 0  # ... and the calls: their ratio is the mean batch (vLLM's Fig. 13)

    def metrics(self, ttft_target_s: float, itl_target_s: float) -> dict[str, float]:
        """Throughput, latency percentiles, goodput and KV waste, as record metrics."""
        done = list(self.results.values())
        start = min(r.arrival_s for r in done)
        span = max(r.finish_s for r in done) - start
        n_tokens = sum(len(r.tokens) for r in done)
        ttft = torch.tensor([r.ttft_s for r in done])
        itl = torch.tensor([d for r in done for d in r.inter_token_s] or [0.0])
        good = sum(r.ttft_s <= ttft_target_s and max(r.inter_token_s, default=0.0) <= itl_target_s for r in done)
        out = {"output_tokens_per_s": n_tokens / span, "requests_per_s": len(done) / span,
               "goodput_requests_per_s": good / span, "slo_attained": good / len(done),
               "makespan_s": span, "busy_fraction": self.busy_s / span,
               "kv_peak_reserved_bytes": float(self.peak_reserved_bytes),
               "kv_waste": 1 - self.used_byte_steps / max(self.reserved_byte_steps, 1.0),
               "peak_batch": float(self.peak_batch),
               "mean_batch": self.batched_sequences / max(self.decode_calls, 1)}
        if self.peak_contiguous_bytes:
            out["kv_peak_contiguous_equiv_bytes"] = float(self.peak_contiguous_bytes)
        for name, values in (("ttft", ttft), ("itl", itl)):
            for q in (50, 90, 99):
                out[f"{name}_p{q}_ms"] = float(torch.quantile(values.double(), q / 100)) * 1e3
        return out


class Clock:
    """Simulated time in seconds; `run` advances it by a call's measured wall time."""

    def __init__(self):
        self.now = 0.0
        self.busy = 0.0

    def run(self, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        _sync()
        elapsed = time.perf_counter() - start
        self.now += elapsed
        self.busy += elapsed
        return out

    def wait_until(self, t: float) -> None:
        self.now = max(self.now, t)


class Memory:
    """Tracks the KV store's reserved and used bytes at every model call (KV memory, not the process's)."""

    def __init__(self, store: Any):
        self.store = store
        self.peak = self.reserved_steps = self.used_steps = self.peak_contiguous = 0.0
        self.batched = self.decode_calls = 0

    def decoded(self, batch: int) -> None:
        """A decode call ran over `batch` sequences."""
        self.batched += batch
        self.decode_calls += 1

    def sample(self) -> None:
        reserved = self.store.reserved_bytes()
        self.peak = max(self.peak, reserved)
        if hasattr(self.store, "contiguous_bytes"):
            self.peak_contiguous = max(self.peak_contiguous, self.store.contiguous_bytes())
        self.reserved_steps += reserved
        self.used_steps += self.store.used_bytes()


def _sync() -> None:
    """Wait for queued GPU work, so wall time covers it (no-op on the CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def emit(result: RequestResult, logits: torch.Tensor, now: float) -> int:
    """Greedy token from `logits` (V,), recorded at clock time `now`."""
    token = int(logits.argmax())
    result.tokens.append(token)
    result.token_times_s.append(now)
    return token


def arrivals(trace: list[Request], clock: Clock, next_index: int) -> tuple[list[Request], int]:
    """Requests that have arrived by `clock.now`, from trace[next_index:]."""
    out = []
    while next_index < len(trace) and trace[next_index].arrival_s <= clock.now:
        out.append(trace[next_index])
        next_index += 1
    return out, next_index
