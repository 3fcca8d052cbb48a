"""Attention of one block of queries against one block of keys, returned with its
log-sum-exp, and the merge of two such partial results (the online softmax).

A query row's softmax over keys split into blocks is rebuilt exactly from each block's
output o_i and log-sum-exp l_i: l = log(sum exp l_i), o = sum o_i exp(l_i - l). This is
what lets ring attention visit key/value blocks one at a time, in any order, on any device.
Queries are taken `rows` at a time, so the scores held at once are rows x keys per head:
the memory of a block grows with its length, not its square.
"""
from __future__ import annotations

import torch

ROWS = 256  # query rows per score tile


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, scale: float,
           rows: int = ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, H, n, D), k and v (B, H, m, D) -> (out (B, H, n, D), lse (B, H, n)), both in float32
    (float64 for float64 inputs).

    causal: the block is on the diagonal (query i and key i share a position, n == m), so
    query i sees keys 0..i. Every query row sees at least one key."""
    accumulate = torch.promote_types(q.dtype, torch.float32)
    outs, lses = [], []
    for start in range(0, q.shape[2], rows):
        end = min(start + rows, q.shape[2])
        scores = (q[:, :, start:end] @ k.transpose(-1, -2)).to(accumulate) * scale  # (B, H, r, m)
        if causal:
            future = torch.arange(k.shape[2], device=q.device)[None, :] > torch.arange(start, end, device=q.device)[:, None]
            scores = scores.masked_fill(future, float("-inf"))
        lse = torch.logsumexp(scores, dim=-1)
        outs.append(torch.exp(scores - lse[..., None]).to(v.dtype) @ v)
        lses.append(lse)
    return torch.cat(outs, dim=2).to(accumulate), torch.cat(lses, dim=2)


def merge(out: torch.Tensor, lse: torch.Tensor, block_out: torch.Tensor,
          block_lse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax over the keys of both parts: (out, lse) may be empty (lse = -inf, out = 0),
    the block may not (its lse is finite)."""
    total = torch.logaddexp(lse, block_lse)
    merged = out * torch.exp(lse - total)[..., None] + block_out * torch.exp(block_lse - total)[..., None]
    return merged, total
