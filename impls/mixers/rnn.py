"""Elman RNN written out as its equation: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""
from __future__ import annotations

import torch
from torch import nn

from impls.mixers.base import Mixer
from impls.registry import register


def init_like_torch(module: nn.Module, hidden: int) -> None:
    """Uniform(-1/sqrt(hidden), 1/sqrt(hidden)) on every weight and bias, as nn.RNN/LSTM/GRU do."""
    bound = hidden ** -0.5
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


@register("mixer", "rnn", params={}, doc="Elman RNN (tanh), one readable loop over time")
class RNN(Mixer):
    """Elman RNN; the output at t is the hidden state h_t (hidden size = d_model).

    State: h (B, d_model). The input projection runs for all steps at once;
    only the recurrence h_{t-1} -> h_t is sequential.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.input_to_hidden = nn.Linear(d_model, d_model)   # W_ih, b_ih
        self.hidden_to_hidden = nn.Linear(d_model, d_model)  # W_hh, b_hh
        init_like_torch(self, d_model)

    def init_state(self, batch: int, max_len: int) -> torch.Tensor:
        p = self._param()
        return torch.zeros(batch, self.d_model, device=p.device, dtype=p.dtype)

    def prefill(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, d), h: (B, d) -> (y (B, T, d), h_T)."""
        xs = self.input_to_hidden(x)  # (B, T, d)
        ys = []
        for t in range(x.shape[1]):
            h = torch.tanh(xs[:, t] + self.hidden_to_hidden(h))
            ys.append(h)
        return torch.stack(ys, dim=1), h
