"""GRU written out gate by gate (Cho et al. 2014, in torch's formulation).

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))    # reset gate applied after W_hn
    h' = (1 - z) * n + z * h

Gates are stacked in torch's order (r, z, n), so nn.GRU's weights copy over unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from impls.mixers.base import Mixer
from impls.mixers.rnn import init_like_torch
from impls.registry import register


@register("mixer", "gru", params={}, doc="GRU, one readable loop over time")
class GRU(Mixer):
    """GRU; the output at t is h_t (hidden size = d_model). State: h (B, d_model)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.input_to_gates = nn.Linear(d_model, 3 * d_model)   # rows: r, z, n
        self.hidden_to_gates = nn.Linear(d_model, 3 * d_model)  # rows: r, z, n
        init_like_torch(self, d_model)

    def init_state(self, batch: int, max_len: int) -> torch.Tensor:
        p = self._param()
        return torch.zeros(batch, self.d_model, device=p.device, dtype=p.dtype)

    def prefill(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, d), h: (B, d) -> (y (B, T, d), h_T)."""
        gates_x = self.input_to_gates(x)  # (B, T, 3d)
        ys = []
        for t in range(x.shape[1]):
            xr, xz, xn = gates_x[:, t].chunk(3, dim=-1)
            hr, hz, hn = self.hidden_to_gates(h).chunk(3, dim=-1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            ys.append(h)
        return torch.stack(ys, dim=1), h
