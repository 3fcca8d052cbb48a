"""A language model with a scalar head: the reward model and PPO's value model.

The LM's vocabulary head is replaced by one linear unit, so the same preset (any
mixer) reads a sequence and gives one number per position: the reward model reads
it at the last position, the value model at every position.
"""
from __future__ import annotations

import torch
from torch import nn


def with_scalar_head(model: nn.Module) -> nn.Module:
    """`model` (a LanguageModel) with its head replaced by Linear(d_model, 1): forward
    then gives (B, T, 1). The embedding stays (a tied head is untied by the swap)."""
    model.head = nn.Linear(model.config.d_model, 1)
    nn.init.normal_(model.head.weight, std=model.config.d_model ** -0.5)
    nn.init.zeros_(model.head.bias)
    return model


def scores(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The scalar model's output at the last position: tokens (B, T) -> (B,) float32."""
    return model(tokens)[:, -1, 0].float()


def values(model: nn.Module, tokens: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """The value of each state a completion token was chosen in: tokens (B, P + L) ->
    (B, L), position t of it read after token P - 1 + t (the prefix before action t)."""
    return model(tokens)[:, prompt_len - 1:-1, 0].float()


def completion_logprobs(model: nn.Module, tokens: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """log p(token | prefix) of each completion token: tokens (B, P + L) -> (B, L) float32."""
    logits = model(tokens)[:, prompt_len - 1:-1].float()  # (B, L, V): predicts tokens P..P+L-1
    return logits.log_softmax(-1).gather(-1, tokens[:, prompt_len:, None])[..., 0]
