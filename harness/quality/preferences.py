"""Synthetic preferences on selective copying, a reward model trained on them, and
decoding strategies scored by it.

The prompt is a selective-copying context up to and including the separator
(harness.quality.synthetic); a completion is an answer of n_memorize symbols. Of two
completions the one with fewer copying errors is preferred, so every preference is
decidable: each pair draws two different error counts from 0..n_memorize and corrupts
that many answer positions (each by a different symbol). The reward model is trained
on the pairs with the Bradley-Terry loss; held-out pairs from another seed give its
accuracy. A policy trained on the task (teacher-forced) then answers held-out prompts
by greedy, beam and sampling decoding, and the reward model scores each strategy's
answers beside their true copy accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.quality import synthetic
from harness.quality.lm_tasks import EVAL_SEED_OFFSET  # held-out pairs never come from the training stream
from harness.quality.training import Budget, TrainLog, train
from impls.decoding import generate
from impls.rlhf.heads import scores
from impls.rlhf.losses import bradley_terry_loss


FIRST_SYMBOL = 2  # selective copying: 0 noise, 1 separator, then the symbols


@dataclass(frozen=True)
class Task:
    seq_len: int  # the selective-copying length: prompt (seq_len - n_memorize + 1) + answer - 1
    n_memorize: int
    n_symbols: int

    @property
    def vocab_size(self) -> int:
        return synthetic.selective_copy_vocab(self.n_symbols)

    @property
    def prompt_len(self) -> int:
        return self.seq_len - self.n_memorize + 1

    @property
    def total_len(self) -> int:
        return self.seq_len + 1


@dataclass(frozen=True)
class Pairs:
    chosen: torch.Tensor  # (B, P + L)
    rejected: torch.Tensor  # (B, P + L)
    chosen_errors: torch.Tensor  # (B,) answer positions wrong
    rejected_errors: torch.Tensor  # (B,), always more than chosen_errors


def prompts_and_answers(task: Task, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (B, P) and their true answers (B, L)."""
    b = synthetic.selective_copy(batch, task.seq_len, gen, task.n_memorize, task.n_symbols)
    sequences = torch.cat([b.inputs, b.targets[:, -1:]], dim=1)
    return sequences[:, :task.prompt_len], sequences[:, task.prompt_len:]


def corrupt(answers: torch.Tensor, errors: torch.Tensor, n_symbols: int, gen: torch.Generator) -> torch.Tensor:
    """answers (B, L) with errors[b] random positions of row b each changed to another symbol."""
    B, L = answers.shape
    positions = torch.rand(B, L, generator=gen).argsort(-1) < errors[:, None]  # errors[b] positions, uniformly
    shift = torch.randint(1, n_symbols, (B, L), generator=gen)  # never 0: a changed symbol is another symbol
    changed = (answers - FIRST_SYMBOL + shift) % n_symbols + FIRST_SYMBOL
    return torch.where(positions, changed, answers)


def preference_pairs(task: Task, batch: int, gen: torch.Generator) -> Pairs:
    """Pairs over the same prompt; the chosen answer has fewer copying errors."""
    prompts, answers = prompts_and_answers(task, batch, gen)
    counts = torch.rand(batch, task.n_memorize + 1, generator=gen).argsort(-1)[:, :2]  # two different counts
    fewer, more = counts.min(-1).values, counts.max(-1).values
    chosen = torch.cat([prompts, corrupt(answers, fewer, task.n_symbols, gen)], dim=1)
    rejected = torch.cat([prompts, corrupt(answers, more, task.n_symbols, gen)], dim=1)
    return Pairs(chosen, rejected, fewer, more)


def train_reward_model(reward: nn.Module, task: Task, batch: int, budget: Budget, seed: int) -> TrainLog:
    """Train `reward` (an LM with a scalar head) on fresh pairs each step."""
    gen = torch.Generator().manual_seed(seed)

    def next_batch(step: int):
        pairs = preference_pairs(task, batch, gen)
        return pairs.chosen, pairs.rejected, None

    def loss(model: nn.Module, batch_: Any, step: int) -> torch.Tensor:
        chosen, rejected, _ = batch_
        return bradley_terry_loss(scores(model, chosen), scores(model, rejected))

    return train(reward, next_batch, budget, loss_fn=loss)


@torch.no_grad()
def preference_accuracy(reward: nn.Module, task: Task, n_pairs: int, seed: int) -> dict[str, float]:
    """Held-out pairs: the fraction the reward model ranks right (ties count as wrong), and
    the Bradley-Terry loss on them."""
    pairs = preference_pairs(task, n_pairs, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET))
    device = next(reward.parameters()).device
    chosen, rejected = scores(reward, pairs.chosen.to(device)), scores(reward, pairs.rejected.to(device))
    return {"preference_accuracy": float((chosen > rejected).float().mean()),
            "preference_loss": float(bradley_terry_loss(chosen, rejected))}


def train_policy(policy: nn.Module, task: Task, batch: int, budget: Budget, seed: int) -> TrainLog:
    """Supervised training on selective copying (the policy before RL)."""
    gen = torch.Generator().manual_seed(seed)

    def next_batch(step: int):
        b = synthetic.selective_copy(batch, task.seq_len, gen, task.n_memorize, task.n_symbols)
        return b.inputs, b.targets, b.mask

    return train(policy, next_batch, budget)


@torch.no_grad()
def score_strategies(policy: nn.Module, reward: nn.Module, task: Task, n_prompts: int, seed: int,
                     strategies: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Held-out prompts answered by each strategy (name -> generate's options): the reward
    model's mean score and the true copy accuracy, as reward_<name> and copy_accuracy_<name>;
    the same for the true answers (`truth`)."""
    prompts, answers = prompts_and_answers(task, n_prompts, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET))
    device = next(policy.parameters()).device
    prompts, answers = prompts.to(device), answers.to(device)
    completions: dict[str, torch.Tensor] = {"truth": answers}
    for name, options in strategies.items():
        completions[name] = generate(policy, prompts, task.n_memorize, **options).tokens
    out = {}
    for name, completion in completions.items():
        out[f"reward_{name}"] = float(scores(reward, torch.cat([prompts, completion], dim=1)).mean())
        out[f"copy_accuracy_{name}"] = float((completion == answers).float().mean())
    return out


