"""Sampling with temperature, top-k and top-p (nucleus), under a seeded generator."""
from __future__ import annotations

from typing import Any

import torch

from impls.decoding import greedy
from impls.decoding.session import Session
from impls.decoding.stats import Recorder


def decode(model: Any, prompt: torch.Tensor, max_new_tokens: int, recorder: Recorder,
           cache: str = "static", window: int | None = None, eos_id: int | None = None,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           seed: int = 0, compile: bool = False) -> torch.Tensor:
    """Tokens (B, max_new_tokens) drawn from the filtered distribution at each step."""
    generator = torch.Generator().manual_seed(seed)

    def choose(logits: torch.Tensor) -> torch.Tensor:
        return sample(filtered_probs(logits, temperature, top_k, top_p), generator)

    session = Session(model, prompt.shape[0], prompt.shape[1] + max_new_tokens, cache, window, compile)
    return greedy.run(session, prompt, max_new_tokens, recorder, choose, eos_id)


def filtered_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> torch.Tensor:
    """Probabilities (..., V) in float32 after temperature, top-k and top-p.

    Temperature 0 means greedy (all mass on the argmax). top-p keeps the smallest
    set of most likely tokens whose mass reaches p (always at least one token).
    """
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs  # mass of strictly more likely tokens
        sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def sample(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of `probs` (B, V); (B,) long, on probs' device.
    The generator lives on the CPU so that a seed gives the same tokens on any device."""
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(probs.device)
