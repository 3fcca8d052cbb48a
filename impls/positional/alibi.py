"""ALiBi: attention with linear biases (Press et al. 2022).

Head h adds -slope_h * (i - j) to the score of query i on key j (j <= i):
no position embeddings, a per-head linear penalty on distance. The paper is
about causal LMs; an encoder, which sees keys on both sides, uses the distance
|i - j| (symmetric=True).
"""
from __future__ import annotations

import math

import torch

from impls.registry import register


def slopes(heads: int) -> torch.Tensor:
    """(heads,) float32 slopes. For heads = 2^k: the geometric sequence
    2^(-8/heads), 2^(-16/heads), ..., 2^-8. Otherwise (as in the paper's code): the
    slopes of the nearest lower power of two, then every other slope of twice that."""
    def geometric(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    lower = 2 ** int(math.floor(math.log2(heads)))
    values = geometric(lower)
    if lower != heads:
        values += geometric(2 * lower)[0::2][: heads - lower]
    return torch.tensor(values, dtype=torch.float32)


@register("positional", "alibi", kind="bias", doc="per-head linear distance bias on attention scores")
def bias(heads: int, positions_q: torch.Tensor, positions_k: torch.Tensor,
         symmetric: bool = False) -> torch.Tensor:
    """(heads, N, M) float32 bias -slope_h * (pos_q - pos_k). Future keys (pos_k > pos_q)
    get a positive value; the causal mask, not this bias, removes them. symmetric=True:
    -slope_h * |pos_q - pos_k|, for bidirectional (encoder) attention, which sees both sides."""
    distance = positions_q.float()[:, None] - positions_k.float()[None, :]  # (N, M)
    if symmetric:
        distance = distance.abs()
    return -slopes(heads).to(positions_q.device)[:, None, None] * distance
