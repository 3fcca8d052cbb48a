"""Numbers to words with an encoder-decoder: train, then greedy-decode a held-out set.

Training options: teacher forcing (default); scheduled sampling (Bengio et al.
2015), where each decoder input is replaced by the model's own previous
prediction with a probability that rises linearly from 0 to
`scheduled_sampling` over training (predictions from a teacher-forced pass, the
two-pass form that also fits Transformers); a length curriculum that allows
numbers of 1 digit at first and all 6 by half of the training.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from harness.quality import numbers
from harness.quality.lm_tasks import budget, log_metrics
from harness.quality.metrics import bleu, exact_match
from harness.quality.training import TrainLog, token_loss, train

MakeSeq2Seq = Callable[[int, int, int], nn.Module]  # (src_vocab, tgt_vocab, max_seq_len) -> model
MAX_TARGET = 12  # longest target (10 words) + <bos>/<eos>, with room


def curriculum_digits(step: int, steps: int) -> int:
    """Digits allowed at `step`: 1 at the start, MAX_DIGITS from half of training on."""
    return 1 + min(numbers.MAX_DIGITS - 1, int((numbers.MAX_DIGITS - 1) * step / max(1, steps // 2)))


@torch.no_grad()
def sampled_inputs(model: nn.Module, src: torch.Tensor, tgt_in: torch.Tensor, probability: float,
                   gen: torch.Generator) -> torch.Tensor:
    """tgt_in with each input after <bos> replaced, with `probability`, by the model's
    teacher-forced prediction of that position (padding is left alone)."""
    predicted = model(src, tgt_in).argmax(-1)  # (B, L): prediction for position t+1 at t
    replace = (torch.rand(tgt_in.shape, generator=gen) < probability).to(tgt_in.device)
    replace[:, 0] = False
    replace &= tgt_in != numbers.PAD
    mixed = tgt_in.clone()
    mixed[:, 1:] = torch.where(replace[:, 1:], predicted[:, :-1], tgt_in[:, 1:])
    return mixed


@torch.no_grad()
def greedy(model: nn.Module, src: torch.Tensor, max_len: int = MAX_TARGET) -> list[list[int]]:
    """Greedy decoding with the cached encoder output: one decode_step per token."""
    memory = model.encode(src)
    state = model.init_state(src.shape[0], max_len)
    token = torch.full((src.shape[0],), numbers.BOS, dtype=torch.long, device=src.device)
    out = []
    for _ in range(max_len):
        logits, state = model.decode_step(token, memory, state)
        token = logits.argmax(-1)
        out.append(token)
    return torch.stack(out, dim=1).tolist()


def train_numbers(make_model: MakeSeq2Seq, p: Any) -> tuple[nn.Module, TrainLog, numbers.Split]:
    """The model trained on numbers to words under p's budget and options, its log, and the split."""
    data = numbers.split(p.seed, n_test=p.eval_samples)
    gen = torch.Generator().manual_seed(p.seed)
    model = make_model(numbers.SRC_VOCAB, numbers.TGT_VOCAB, 2 * MAX_TARGET)

    def next_batch(step: int):
        digits = curriculum_digits(step, p.steps) if p.curriculum else None
        pairs = numbers.sample(data.train, p.batch, gen, max_digits=digits)
        return pairs.src, pairs.tgt_in, pairs.tgt_out

    def loss_fn(model: nn.Module, batch, step: int) -> torch.Tensor:
        src, tgt_in, tgt_out = batch
        if p.scheduled_sampling > 0:
            tgt_in = sampled_inputs(model, src, tgt_in, p.scheduled_sampling * step / max(1, p.steps), gen)
        return token_loss(model(src, tgt_in), tgt_out, tgt_out != numbers.PAD)

    return model, train(model, next_batch, budget(p), loss_fn), data


def translations(model: nn.Module, test: numbers.Pairs) -> tuple[list[str], list[str]]:
    """Greedy translations of the test numbers, and the right ones."""
    device = next(model.parameters()).device
    hypotheses = [numbers.decode_target(row) for row in greedy(model, test.src.to(device))]
    return hypotheses, [numbers.to_words(n) for n in test.numbers]


def numbers_to_words(make_model: MakeSeq2Seq, p: Any) -> dict[str, Any]:
    """BLEU and exact match of greedy translations of held-out numbers."""
    model, log, data = train_numbers(make_model, p)
    hypotheses, references = translations(model, numbers.pairs(data.test.tolist()))
    return {"bleu": bleu(hypotheses, references), "exact_match": exact_match(hypotheses, references),
            **log_metrics(log)}
