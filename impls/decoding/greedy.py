"""Greedy decoding: the most likely token at every step."""
from __future__ import annotations

from typing import Any

import torch

from impls.decoding.session import Session
from impls.decoding.stats import Recorder


def decode(model: Any, prompt: torch.Tensor, max_new_tokens: int, recorder: Recorder,
           cache: str = "static", window: int | None = None, eos_id: int | None = None,
           compile: bool = False) -> torch.Tensor:
    """Tokens (B, max_new_tokens); after a row emits `eos_id` it repeats it."""
    session = Session(model, prompt.shape[0], prompt.shape[1] + max_new_tokens, cache, window, compile)
    return run(session, prompt, max_new_tokens, recorder, lambda logits: logits.argmax(-1), eos_id)


def run(session: Session, prompt: torch.Tensor, max_new_tokens: int, recorder: Recorder,
        choose, eos_id: int | None) -> torch.Tensor:
    """The decode loop shared by greedy and sampling; `choose(logits (B, V)) -> (B,)`."""
    logits = session.prefill(prompt, last=1)[:, -1]
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
    out = []
    for i in range(max_new_tokens):
        token = choose(logits)
        if eos_id is not None:
            token = torch.where(done, torch.full_like(token, eos_id), token)
            done |= token == eos_id
        out.append(token)
        recorder.emitted(1, session.length, session.cache_bytes())
        if i + 1 == max_new_tokens or (eos_id is not None and bool(done.all())):
            break
        logits = session.step(token)
    tokens = torch.stack(out, 1)
    if tokens.shape[1] < max_new_tokens:  # every row finished early: pad with EOS
        tokens = torch.cat([tokens, tokens.new_full((tokens.shape[0], max_new_tokens - tokens.shape[1]), eos_id)], 1)
    return tokens
