"""Quality tasks for decoder-only LMs, each: build data, train under a budget, evaluate.

Every task takes `make_model(vocab_size, max_seq_len) -> LanguageModel` and the
train workload's params `p`, and returns flat metrics. The model and data are
seeded from `p.seed`; evaluation data never overlaps training data (a held-out
text split, or sequences drawn from a different seed).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from harness.quality import corpus, synthetic, tokenization
from harness.quality.metrics import bits_per_token, perplexity
from harness.quality.training import Budget, TrainLog, masked_accuracy, mean_nll, train

MakeModel = Callable[[int, int], nn.Module]
EVAL_SEED_OFFSET = 1_000_003  # evaluation sequences come from seed + this, never from the training stream


def budget(p: Any) -> Budget:
    return Budget(steps=p.steps, seconds=p.seconds, lr=p.lr, warmup_steps=p.warmup_steps,
                  grad_clip=p.grad_clip, record_every=p.record_every)


def log_metrics(log: TrainLog) -> dict[str, Any]:
    return {"loss_curve": log.losses, "initial_loss": log.losses[0] if log.losses else float("nan"),
            "final_loss": log.losses[-1] if log.losses else float("nan"),
            "diverged": float(log.diverged), "train_steps": float(log.steps), "train_s": log.seconds}


def _train_on_corpus(make_model: MakeModel, p: Any,
                     max_seq_len: int) -> tuple[nn.Module, tokenization.TokenizedCorpus, TrainLog]:
    text = tokenization.load(p.tokenizer, p.corpus)
    gen = torch.Generator().manual_seed(p.seed)
    model = make_model(text.vocab_size, max_seq_len)

    def next_batch(step: int):
        return (*corpus.random_windows(text.train.ids, p.batch, p.seq_len, gen), None)

    return model, text, train(model, next_batch, budget(p))


def _nll_at(model: nn.Module, text: tokenization.TokenizedCorpus, seq_len: int, eval_tokens: int,
            batch: int) -> tuple[float, float]:
    """Mean NLL (nats per token) over validation windows, and the characters per token
    of the predicted tokens."""
    inputs, targets = corpus.eval_windows(text.valid.ids, seq_len, max(1, eval_tokens // seq_len))
    predicted = targets.numel()  # tokens 1..predicted of the split
    return mean_nll(model, inputs, targets, batch=batch), text.valid.chars_between(1, predicted) / predicted


def char_lm(make_model: MakeModel, p: Any) -> dict[str, Any]:
    """LM on the corpus (characters or BPE tokens): validation perplexity per token, and
    bits per character over the characters the evaluated tokens cover."""
    model, text, log = _train_on_corpus(make_model, p, p.seq_len)
    nll, chars_per_token = _nll_at(model, text, p.seq_len, p.eval_tokens, p.batch)
    return {"val_loss": nll, "val_ppl": perplexity(nll), "val_bpc": bits_per_token(nll) / chars_per_token,
            "val_bits_per_token": bits_per_token(nll), "chars_per_token": chars_per_token,
            "chars_per_window": chars_per_token * p.seq_len, "vocab_size": float(text.vocab_size), **log_metrics(log)}


def length_extrapolation(make_model: MakeModel, p: Any) -> dict[str, Any]:
    """Train on windows of seq_len N; validation perplexity on windows of N, 2N and 4N
    (the same number of tokens each). Positions past N were never trained on."""
    model, text, log = _train_on_corpus(make_model, p, 4 * p.seq_len)
    metrics: dict[str, Any] = {}
    for factor in (1, 2, 4):
        nll, _ = _nll_at(model, text, factor * p.seq_len, p.eval_tokens, max(1, p.batch // factor))
        metrics[f"val_ppl_{factor}x"] = perplexity(nll)
    metrics["ppl_ratio_2x"] = metrics["val_ppl_2x"] / metrics["val_ppl_1x"]
    metrics["ppl_ratio_4x"] = metrics["val_ppl_4x"] / metrics["val_ppl_1x"]
    return {**metrics, **log_metrics(log)}


SYNTHETIC = {
    "selective_copy": (synthetic.selective_copy, lambda p: synthetic.selective_copy_vocab(p.n_symbols),
                       lambda p: {"n_memorize": p.n_memorize, "n_symbols": p.n_symbols}),
    "mqar": (synthetic.mqar, lambda p: synthetic.mqar_vocab(p.n_symbols, p.n_symbols),
             lambda p: {"n_pairs": p.n_memorize, "n_keys": p.n_symbols, "n_values": p.n_symbols}),
}


def long_range(task: str, make_model: MakeModel, p: Any) -> dict[str, Any]:
    """Selective copying or MQAR at seq_len: accuracy on held-out sequences (`n_memorize`
    is the number of symbols to copy, or of key-value pairs; `n_symbols` the alphabet size)."""
    generate, vocab, options = SYNTHETIC[task]
    gen = torch.Generator().manual_seed(p.seed)
    model = make_model(vocab(p), p.seq_len)

    def next_batch(step: int):
        b = generate(p.batch, p.seq_len, gen, **options(p))
        return b.inputs, b.targets, b.mask

    log = train(model, next_batch, budget(p))
    held_out = generate(p.eval_samples, p.seq_len, torch.Generator().manual_seed(p.seed + EVAL_SEED_OFFSET),
                        **options(p))
    accuracy = masked_accuracy(model, held_out.inputs, held_out.targets, held_out.mask, batch=p.batch)
    nll = mean_nll(model, held_out.inputs, held_out.targets, held_out.mask, batch=p.batch)
    return {"accuracy": accuracy, "val_loss": nll, **log_metrics(log)}


TASKS: dict[str, Callable[[MakeModel, Any], dict[str, Any]]] = {
    "char_lm": char_lm,
    "extrapolation": length_extrapolation,
    "selective_copy": lambda make_model, p: long_range("selective_copy", make_model, p),
    "mqar": lambda make_model, p: long_range("mqar", make_model, p),
}
