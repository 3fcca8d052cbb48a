"""`generate`: the one entry point for decoding a LanguageModel.

    gen = generate(model, prompt_ids, max_new_tokens=32, strategy="beam", width=4)
    gen.tokens  # (B, max_new_tokens) long, new tokens only
    gen.stats   # GenerationStats: TTFT, per-token latency, tokens/s, cache bytes

Each strategy is one module with `decode(model, prompt, max_new_tokens,
recorder, **options) -> tokens`; options common to all are `cache`
("none" | "grow" | "static" | "window"; default "static": preallocated and
written in place), `window`, and `compile` (True: the one-token step compiled
with torch.compile, over a static cache; see compiled.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from impls.decoding import beam, greedy, sampling, speculative
from impls.decoding.stats import GenerationStats, Recorder

STRATEGIES: dict[str, Callable[..., torch.Tensor]] = {
    "greedy": greedy.decode, "beam": beam.decode, "sampling": sampling.decode,
    "speculative": speculative.decode,
}


@dataclass
class Generation:
    tokens: torch.Tensor  # (B, new) long
    stats: GenerationStats


@torch.no_grad()
def generate(model: Any, prompt_ids: torch.Tensor, max_new_tokens: int, strategy: str = "greedy",
             **options: Any) -> Generation:
    """Continue `prompt_ids` (B, T) long by `max_new_tokens` tokens with `strategy`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decoding strategy '{strategy}'; valid: {', '.join(STRATEGIES)}")
    if prompt_ids.dim() != 2 or prompt_ids.shape[1] < 1:
        raise ValueError(f"prompt_ids must be (batch, T>=1) long, got shape {tuple(prompt_ids.shape)}")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    recorder = Recorder(prompt_ids.shape[0])
    tokens = STRATEGIES[strategy](model, prompt_ids, max_new_tokens, recorder, **options)
    return Generation(tokens, recorder.finish(tokens))
