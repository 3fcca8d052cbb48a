"""LSTM written out gate by gate (Hochreiter & Schmidhuber 1997, with forget gate).

    i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (W_i x_t + b_i + W_h h_{t-1} + b_h)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Gates are stacked in torch's order (i, f, g, o), so nn.LSTM's weight_ih_l0,
weight_hh_l0, bias_ih_l0, bias_hh_l0 copy over unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from impls.mixers.base import Mixer
from impls.mixers.rnn import init_like_torch
from impls.registry import register


@register("mixer", "lstm", params={}, doc="LSTM, one readable loop over time")
class LSTM(Mixer):
    """LSTM; the output at t is h_t (hidden size = d_model). State: (h, c), each (B, d_model)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.input_to_gates = nn.Linear(d_model, 4 * d_model)   # rows: i, f, g, o
        self.hidden_to_gates = nn.Linear(d_model, 4 * d_model)  # rows: i, f, g, o
        init_like_torch(self, d_model)

    def init_state(self, batch: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self._param()
        zeros = torch.zeros(batch, self.d_model, device=p.device, dtype=p.dtype)
        return zeros, zeros.clone()

    def prefill(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x: (B, T, d), state (h, c) -> (y (B, T, d), (h_T, c_T))."""
        h, c = state
        gates_x = self.input_to_gates(x)  # (B, T, 4d), every step at once
        ys = []
        for t in range(x.shape[1]):
            i, f, g, o = (gates_x[:, t] + self.hidden_to_gates(h)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys, dim=1), (h, c)
