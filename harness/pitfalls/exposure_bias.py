"""Exposure bias: trained on true prefixes (teacher forcing), a model decodes from its own.

The task is selective copying (harness.quality.synthetic): symbols scattered in
noise, a separator, then the symbols in order, so every answer token has one
right value given the context. After a seeded training budget the model answers
held-out sequences twice: teacher-forced (each answer token predicted from the
true earlier answers) and free-running (greedy decoding through
impls.decoding.generate, each token predicted from the model's own earlier
answers). The gap between the two accuracies is what feeding the model its own
mistakes costs; an error early in a free-running answer can derail the rest.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from harness.quality import synthetic
from harness.quality.training import Budget, train
from impls.decoding import generate

EVAL_SEED_OFFSET = 1_000_003  # held-out sequences never come from the training stream


def exposure_bias(make_model: Callable[[int, int], nn.Module], budget: Budget, batch: int, seq_len: int,
                  n_memorize: int, n_symbols: int, eval_samples: int, seed: int) -> dict[str, Any]:
    """Train make_model(vocab_size, max_seq_len) on selective copying, then metrics:
    tf_accuracy, fr_accuracy (answer tokens right, teacher-forced and free-running),
    exposure_gap (their difference), tf_exact, fr_exact (whole answers right),
    tf_ and fr_accuracy_by_position (lists, first answer token first; the first is
    predicted from the same true prefix both ways), final_loss."""
    vocab = synthetic.selective_copy_vocab(n_symbols)
    model = make_model(vocab, seq_len)
    gen = torch.Generator().manual_seed(seed)

    def next_batch(step: int):
        b = synthetic.selective_copy(batch, seq_len, gen, n_memorize, n_symbols)
        return b.inputs, b.targets, b.mask

    log = train(model, next_batch, budget)
    held_out = synthetic.selective_copy(eval_samples, seq_len, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET),
                                        n_memorize, n_symbols)
    return {**_accuracies(model, held_out, n_memorize), "final_loss": log.losses[-1] if log.losses else float("nan")}


@torch.no_grad()
def _accuracies(model: nn.Module, held_out: synthetic.Batch, n_memorize: int) -> dict[str, Any]:
    device = next(model.parameters()).device
    answers = held_out.targets[:, -n_memorize:].to(device)  # (B, n_memorize)
    teacher = model(held_out.inputs.to(device)).argmax(-1)[:, -n_memorize:]
    prompt = held_out.inputs[:, : held_out.inputs.shape[1] - n_memorize + 1].to(device)  # through the separator
    free = generate(model, prompt, n_memorize, strategy="greedy").tokens
    tf_hits, fr_hits = (teacher == answers).float(), (free == answers).float()  # (B, n_memorize)
    return {"tf_accuracy": float(tf_hits.mean()), "fr_accuracy": float(fr_hits.mean()),
            "exposure_gap": float(tf_hits.mean() - fr_hits.mean()),
            "tf_exact": float(tf_hits.prod(-1).mean()), "fr_exact": float(fr_hits.prod(-1).mean()),
            "tf_accuracy_by_position": [round(float(x), 4) for x in tf_hits.mean(0)],
            "fr_accuracy_by_position": [round(float(x), 4) for x in fr_hits.mean(0)]}
