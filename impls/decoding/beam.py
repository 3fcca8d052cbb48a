"""Beam search with length normalisation and EOS handling.

The beams of every prompt are the batch of one model call: B prompts x W beams
advance as a (B*W)-row batch, and after each step the state is reordered by
the surviving beams' parent indices (no per-beam model calls).

Score of a hypothesis = sum of its token log-probs / length ** alpha, where
length counts generated tokens up to and including the first EOS (alpha = 0:
plain log-probability). A finished beam stays in the beam set and can only be
extended by EOS at no cost, so it keeps its score and length.
"""
from __future__ import annotations

from typing import Any

import torch

from impls.decoding.session import Session
from impls.decoding.stats import Recorder


def decode(model: Any, prompt: torch.Tensor, max_new_tokens: int, recorder: Recorder,
           cache: str = "static", window: int | None = None, width: int = 4, alpha: float = 0.0,
           eos_id: int | None = None, compile: bool = False) -> torch.Tensor:
    """The best hypothesis per prompt: tokens (B, max_new_tokens), EOS-padded after it ends."""
    tokens, scores = search(model, prompt, max_new_tokens, recorder, cache, window, width, alpha, eos_id, compile)
    recorder.stats.extra["beam_best_score_mean"] = float(scores[:, 0].mean())
    return tokens[:, 0]


def search(model: Any, prompt: torch.Tensor, max_new_tokens: int, recorder: Recorder, cache: str,
           window: int | None, width: int, alpha: float, eos_id: int | None, compile: bool = False):
    """All final beams, best first: tokens (B, W, new) and normalised scores (B, W)."""
    batch, W, device = prompt.shape[0], width, prompt.device
    session = Session(model, batch, prompt.shape[1] + max_new_tokens, cache, window, compile)
    logits = session.prefill(prompt, last=1)[:, -1]  # prompt once per batch row, then fan out to W beams
    fan_out = torch.arange(batch, device=device).repeat_interleave(W)
    session.reorder(fan_out)
    logits = logits.index_select(0, fan_out)
    logp_sum = torch.full((batch, W), float("-inf"), device=device)
    logp_sum[:, 0] = 0.0  # one live beam at first, so the first step picks W distinct tokens
    lengths = torch.zeros(batch, W, device=device)
    done = torch.zeros(batch, W, dtype=torch.bool, device=device)
    seqs = torch.zeros(batch, W, 0, dtype=torch.long, device=device)
    for i in range(max_new_tokens):
        logp = logits.float().log_softmax(-1).view(batch, W, -1)
        if eos_id is not None:  # finished beams: EOS at cost 0, nothing else
            frozen = torch.full_like(logp[0, 0], float("-inf"))
            frozen[eos_id] = 0.0
            logp = torch.where(done[..., None], frozen, logp)
        cand_sum = (logp_sum[..., None] + logp).view(batch, -1)  # (B, W*V)
        cand_len = (lengths + (~done).float())[..., None].expand_as(logp).reshape(batch, -1)
        _, best = normalise(cand_sum, cand_len, alpha).topk(W, dim=-1)  # (B, W)
        vocab = logp.shape[-1]
        parent, token = best // vocab, best % vocab
        logp_sum, lengths = cand_sum.gather(1, best), cand_len.gather(1, best)
        done = done.gather(1, parent) | (token == eos_id if eos_id is not None else torch.zeros_like(done))
        seqs = torch.cat([seqs.gather(1, parent[..., None].expand_as(seqs)), token[..., None]], -1)
        rows = (parent + torch.arange(batch, device=device)[:, None] * W).view(-1)
        recorder.emitted(1, session.length, session.cache_bytes())
        if i + 1 == max_new_tokens or bool(done.all()):
            break
        session.reorder(rows)
        logits = session.step(token.view(-1))
    scores = normalise(logp_sum, lengths, alpha)
    order = scores.argsort(-1, descending=True)
    seqs, scores = seqs.gather(1, order[..., None].expand_as(seqs)), scores.gather(1, order)
    if seqs.shape[-1] < max_new_tokens:  # all beams ended early
        seqs = torch.cat([seqs, seqs.new_full((*seqs.shape[:2], max_new_tokens - seqs.shape[-1]), eos_id)], -1)
    return seqs, scores


def normalise(logp_sum: torch.Tensor, length: torch.Tensor, alpha: float) -> torch.Tensor:
    """Length-normalised score; -inf stays -inf."""
    return logp_sum if alpha == 0 else logp_sum / length.clamp(min=1) ** alpha
