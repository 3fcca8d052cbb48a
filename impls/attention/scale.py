"""The softmax scale every attention impl defaults to: 1 / sqrt(head_dim)."""
from __future__ import annotations

import math

import torch


def default_scale(q: torch.Tensor, scale: float | None) -> float:
    """`scale`, or 1 / sqrt(D) for queries q (..., N, D) when it is None."""
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
