"""What a generation measured: time to first token, per-token latency, cache size."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class GenerationStats:
    time_to_first_token_s: float = 0.0  # prompt in -> first new token chosen
    per_token_latency_s: list[float] = field(default_factory=list)  # each later decode step
    tokens_per_s: float = 0.0  # new tokens (all rows) / total wall time
    total_s: float = 0.0
    new_tokens: int = 0  # per row
    cache_lengths: list[int] = field(default_factory=list)  # tokens in the state ...
    cache_bytes: list[int] = field(default_factory=list)  # ... and its bytes, after each step
    extra: dict[str, float] = field(default_factory=dict)  # strategy-specific (acceptance_rate, ...)

    def metrics(self) -> dict[str, float]:
        """Flat float metrics for a record."""
        lat = sorted(self.per_token_latency_s)
        out = {"time_to_first_token_ms": self.time_to_first_token_s * 1e3,
               "tokens_per_s": self.tokens_per_s, "new_tokens": float(self.new_tokens),
               "cache_bytes_final": float(self.cache_bytes[-1]) if self.cache_bytes else 0.0}
        if lat:
            out["per_token_ms_p50"] = lat[len(lat) // 2] * 1e3
            out["per_token_ms_mean"] = sum(lat) / len(lat) * 1e3
        return out | self.extra


class Recorder:
    """Clock for one generation: strategies call `emitted` after each decode step."""

    def __init__(self, batch: int):
        self.batch = batch
        self.stats = GenerationStats()
        self.start = self.last = time.perf_counter()

    def emitted(self, n_tokens: int, length: int, cache_bytes: int) -> None:
        """`n_tokens` new tokens per row were chosen; the state now holds `length` tokens."""
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
        self.stats.cache_bytes.append(cache_bytes)

    def finish(self, tokens: torch.Tensor) -> GenerationStats:
        self.stats.total_s = time.perf_counter() - self.start
        self.stats.new_tokens = tokens.shape[1]
        self.stats.tokens_per_s = tokens.numel() / max(self.stats.total_s, 1e-12)
        return self.stats
