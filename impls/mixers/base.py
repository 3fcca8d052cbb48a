"""Defaults shared by every mixer, so each file writes only its own equations."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Mixer(nn.Module):
    """Mixer contract (see impls.mixers): forward, init_state, prefill, step.

    A subclass implements `init_state` and `prefill`; `forward` and `step` are
    derived from them and overridden only where a faster path exists.
    """

    causal = True

    def init_state(self, batch: int, max_len: int) -> Any:
        raise NotImplementedError

    def prefill(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model), starting from an empty state."""
        return self.prefill(x, self.init_state(x.shape[0], x.shape[1]))[0]

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """x_t: (B, d_model) -> (y_t (B, d_model), new state)."""
        y, state = self.prefill(x_t[:, None], state)
        return y[:, 0], state

    def _param(self) -> torch.Tensor:
        """Any parameter: where new state lives (device) and its dtype."""
        return next(self.parameters())
