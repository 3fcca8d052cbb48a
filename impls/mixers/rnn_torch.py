"""torch's fused recurrent layers (nn.RNN / nn.LSTM / nn.GRU; cuDNN on a GPU) as mixers.

Same equations, gate order and state layout as impls.mixers.rnn/lstm/gru (states
are (B, d_model) tensors; torch's leading num_layers axis is added per call), so
weights and states move between the readable cell and the fused one.
"""
from __future__ import annotations

import torch
from torch import nn

from impls.mixers.base import Mixer
from impls.registry import register


class TorchRecurrent(Mixer):
    """One-layer, unidirectional, batch-first torch RNN; output at t is h_t."""

    layer_class: type[nn.RNNBase]
    has_cell = False  # LSTM carries (h, c)

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.rnn = self.layer_class(d_model, d_model, batch_first=True)

    def init_state(self, batch: int, max_len: int):
        p = self._param()
        zeros = torch.zeros(batch, self.d_model, device=p.device, dtype=p.dtype)
        return (zeros, zeros.clone()) if self.has_cell else zeros

    def prefill(self, x: torch.Tensor, state):
        """x: (B, T, d) -> (y (B, T, d), state after the last step)."""
        if self.has_cell:
            y, (h, c) = self.rnn(x, (state[0][None], state[1][None]))
            return y, (h[0], c[0])
        y, h = self.rnn(x, state[None])
        return y, h[0]


@register("mixer", "rnn_torch", params={}, doc="nn.RNN (tanh), fused; cuDNN on GPU")
class RNNTorch(TorchRecurrent):
    layer_class = nn.RNN


@register("mixer", "lstm_torch", params={}, doc="nn.LSTM, fused; cuDNN on GPU")
class LSTMTorch(TorchRecurrent):
    layer_class = nn.LSTM
    has_cell = True


@register("mixer", "gru_torch", params={}, doc="nn.GRU, fused; cuDNN on GPU")
class GRUTorch(TorchRecurrent):
    layer_class = nn.GRU
