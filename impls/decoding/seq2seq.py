"""Greedy decoding for encoder-decoder models, with the encoder output cached.

The source is encoded once and its memory (encoder output plus every decoder
layer's cross-attention keys and values) is reused at every decoder step.
`reuse_memory=False` re-encodes the source before every step instead: the
same tokens at a higher cost, the baseline the cache is measured against.
Works with any model exposing encode(src) -> memory, init_state(batch,
max_len) and decode_step(token, memory, state) -> (logits, state).
"""
from __future__ import annotations

import time
from typing import Any

import torch

from impls.decoding.loop import Generation
from impls.decoding.stats import Recorder
from impls.mixers.state import state_bytes


@torch.no_grad()
def generate_seq2seq(model: Any, src: torch.Tensor, max_new_tokens: int, bos_id: int,
                     eos_id: int | None = None, reuse_memory: bool = True) -> Generation:
    """Target tokens (B, max_new_tokens) for sources `src` (B, S), greedy; after a row
    emits `eos_id` it repeats it. Extra stats: encoder_calls, encode_s (total seconds
    spent encoding), memory_bytes (the cached encoder memory)."""
    recorder = Recorder(src.shape[0])
    encode_s, encoder_calls = 0.0, 0

    def encode():
        nonlocal encode_s, encoder_calls
        start = time.perf_counter()
        memory = model.encode(src)
        encode_s, encoder_calls = encode_s + time.perf_counter() - start, encoder_calls + 1
        return memory

    memory = encode()
    state = model.init_state(src.shape[0], max_new_tokens + 1)
    token = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    out = []
    for i in range(max_new_tokens):
        if not reuse_memory and i > 0:
            memory = encode()
        logits, state = model.decode_step(token, memory, state)
        token = logits.argmax(-1)
        if eos_id is not None:
            token = torch.where(done, torch.full_like(token, eos_id), token)
            done |= token == eos_id
        out.append(token)
        recorder.emitted(1, i + 1, state_bytes(state))
    tokens = torch.stack(out, 1)
    stats = recorder.finish(tokens)
    stats.extra.update(encoder_calls=float(encoder_calls), encode_s=encode_s,
                       memory_bytes=float(state_bytes(memory)))
    return Generation(tokens, stats)
