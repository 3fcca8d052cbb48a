"""What a generation measured: time to first token, per-token latency, cache size."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class GenerationStats:
    time_to_first_token_s: float = 0.0  # prompt in -> first new token chosen
    per_token_latency_s: list[float] = field(default_factory=list)  # each later decode step
    tokens_per_s: float = 0.0  # new tokens (all rows) / total wall time
    total_s: float = 0.0
    new_tokens: int = 0  # per row
    batch: int = 1  # rows decoded together
    cache_lengths: list[int] = field(default_factory=list)  # tokens in the state ...
    cache_bytes: list[int] = field(default_factory=list)  # ... and its bytes, after each step
    extra: dict[str, float] = field(default_factory=dict)  # strategy-specific (acceptance_rate, ...)

    def metrics(self) -> dict[str, float]:
        """What the generation was (tokens, cache, the strategy's extras), not how long it took."""
        out = {"new_tokens": float(self.new_tokens)}
        if self.cache_bytes:
            out["cache_bytes_final"] = float(self.cache_bytes[-1])
        return out | self.extra

    def latencies(self) -> dict[str, float]:
        """How long it took: time to first token, inter-token latency p50/p90/p99 (ms) and
        decode-only tokens/s (tokens after the first / time after the first). A strategy that
        emits no per-token timestamps (transformers' beam search) has none of these."""
        out: dict[str, float] = {}
        if not self.per_token_latency_s:
            return out
        gaps_ms = np.asarray(self.per_token_latency_s) * 1e3
        for q in (50, 90, 99):
            out[f"itl_p{q}_ms"] = float(np.percentile(gaps_ms, q))
        decode_s = self.total_s - self.time_to_first_token_s
        out["time_to_first_token_ms"] = self.time_to_first_token_s * 1e3
        if decode_s > 0:
            out["decode_tokens_per_s"] = self.batch * len(self.per_token_latency_s) / decode_s
        return out


class Recorder:
    """Clock for one generation: strategies call `emitted` after each decode step."""

    def __init__(self, batch: int):
        self.batch = batch
        self.stats = GenerationStats(batch=batch)
        self.start = self.last = time.perf_counter()

    def emitted(self, n_tokens: int, length: int, cache_bytes: int | None) -> None:
        """`n_tokens` new tokens per row were chosen; the state now holds `length` tokens
        (and `cache_bytes`, None where the state is a library's and not counted)."""
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # wall time must cover the queued GPU work
        now = time.perf_counter()
        if self.stats.new_tokens == 0:
            self.stats.time_to_first_token_s = now - self.start
        else:
            self.stats.per_token_latency_s.extend([(now - self.last) / n_tokens] * n_tokens)
        self.last = now
        self.stats.new_tokens += n_tokens
        self.stats.cache_lengths.append(length)
        if cache_bytes is not None:
            self.stats.cache_bytes.append(cache_bytes)

    def finish(self, tokens: torch.Tensor) -> GenerationStats:
        self.stats.total_s = time.perf_counter() - self.start
        self.stats.new_tokens = tokens.shape[1]
        self.stats.tokens_per_s = tokens.numel() / max(self.stats.total_s, 1e-12)
        return self.stats
