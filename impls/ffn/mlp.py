"""The transformer's position-wise MLP: down(act(up(x)))."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from impls.registry import register

ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "swiglu")


def activate(h: torch.Tensor, activation: str) -> torch.Tensor:
    """relu, gelu or gelu_tanh of h; swiglu (Shazeer 2020) splits h (..., 2h) in halves a, b -> silu(a) * b."""
    if activation == "swiglu":
        a, b = h.chunk(2, dim=-1)
        return F.silu(a) * b
    if activation == "gelu":
        return F.gelu(h)
    if activation == "gelu_tanh":  # the tanh approximation GPT-2 was trained with
        return F.gelu(h, approximate="tanh")
    if activation == "relu":
        return F.relu(h)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def up_width(hidden: int, activation: str) -> int:
    """Output width of the up projection: swiglu needs the gate and the value."""
    return 2 * hidden if activation == "swiglu" else hidden


@register("ffn", "mlp", params={"activation": "gelu", "hidden_multiple": 4, "hidden": None},
          doc="dense MLP, hidden = hidden_multiple * d_model or `hidden` (relu | gelu | swiglu)")
class MLP(nn.Module):
    """hidden = hidden_multiple * d_model for every activation, so swiglu has 1.5x the
    parameters of relu/gelu at the same hidden_multiple (pass 8/3 to match them).
    `hidden`, when given, is the width itself (a parameter budget picks it exactly)."""

    aux_loss = None
    stats: dict = {}

    def __init__(self, d_model: int, activation: str = "gelu", hidden_multiple: float = 4,
                 hidden: int | None = None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        hidden = hidden or int(hidden_multiple * d_model)
        self.activation, self.hidden = activation, hidden
        self.up = nn.Linear(d_model, up_width(hidden, activation))
        self.down = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(activate(self.up(x), self.activation))
