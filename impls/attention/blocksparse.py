"""Pieces shared by the sparse attention impls (local, longformer, bigbird, sparse_strided).

A sparse impl computes one or more *parts*, each a softmax over a subset of a
row's keys, returned as (out, lse): the part's normalised output and the
log-sum-exp of its scores. Parts over disjoint key sets are merged exactly by
`merge`, which is how a row gets one softmax over the union.

Masked scores are filled with a large finite negative (not -inf) so that a row
with no keys in one part stays finite in both directions (its lse is ~ -1e9 and
its weight in `merge` is exactly zero); every pattern here gives each row at
least one key overall (its own position), so no row is empty after merging.

Grouped heads (Hkv < Hq) are served by repeating K and V to Hq heads first: a
copy the size of q, which keeps these impls linear in N.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from impls.attention import cost

MASKED = -1.0e9  # finite "minus infinity" for fp32 scores (see module docstring)

# keep(i, j) -> bool tensor; i and j are broadcastable absolute query / key indices.
Keep = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def masked_attention(q, k, v, allowed: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One softmax part over the keys where `allowed` is True.

    q (..., n, D), k and v (..., m, D), allowed broadcastable to (..., n, m).
    Returns out (..., n, D) in fp32 and lse (..., n) in fp32 (natural log).
    """
    scores = ((q * scale) @ k.transpose(-1, -2)).float()  # (..., n, m); scaling q is the cheaper pass
    scores = scores.masked_fill(~allowed, MASKED)
    # The shift only guards exp; the result does not depend on it, so no gradient flows through it.
    row_max = scores.amax(dim=-1, keepdim=True).detach()
    probs = torch.exp(scores - row_max)  # one exp per pair (logsumexp + softmax would take two)
    total = probs.sum(dim=-1, keepdim=True)
    out = (probs.to(v.dtype) @ v).float() / total  # normalise the (n, D) output, not the (n, m) probs
    return out, (row_max + total.log()).squeeze(-1)


def merge(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Combine parts over disjoint key sets into one softmax per row; returns fp32 out."""
    lse = torch.logsumexp(torch.stack([part_lse for _, part_lse in parts]), dim=0)
    return sum(out * torch.exp(part_lse - lse)[..., None] for out, part_lse in parts)


def pad_seq(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad (B, H, L, D) along L to `length`."""
    return F.pad(x, (0, 0, 0, length - x.shape[-2])) if length > x.shape[-2] else x


def neighbour_blocks(n_query_blocks: int, n_key_blocks: int, offsets: list[int]) -> torch.Tensor:
    """(nqb, len(offsets)) key-block indices a + offset, with -1 where off the sequence."""
    blocks = torch.arange(n_query_blocks)[:, None] + torch.tensor(offsets)[None, :]
    return blocks.masked_fill((blocks < 0) | (blocks >= n_key_blocks), -1)


def layout_mask(key_blocks: torch.Tensor, keep: Keep, block: int, m: int, device=None) -> torch.Tensor:
    """(nqb, block, K*block) boolean: which pairs of a gathered layout are attended.

    key_blocks (nqb, K) long, -1 = none; keep(i, j) masks absolute query i, key j;
    keys past m (padding) and unlisted blocks are never attended. Depends only on
    the shape and the pattern, so callers cache it (a sparsity layout)."""
    nqb, per_row = key_blocks.shape[0], key_blocks.shape[1] * block
    safe = key_blocks.clamp(min=0).to(device)
    rows = torch.arange(nqb * block, device=device).view(nqb, block, 1)
    cols = (safe[:, :, None] * block + torch.arange(block, device=device)).view(nqb, 1, per_row)
    listed = (key_blocks >= 0).to(device).repeat_interleave(block, dim=1)[:, None, :]
    return keep(rows, cols) & (cols < m) & listed


def gathered_attention(q, k, v, key_blocks: torch.Tensor, allowed: torch.Tensor, block: int,
                       scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each block of `block` queries attends to its own list of key blocks.

    q (B, H, N, D); k, v (B, H, M, D); key_blocks (ceil(N/block), K) long, -1 = none
    (a block must not be listed twice in a row, or its keys would count twice);
    allowed: `layout_mask` of that layout. The K key blocks are gathered into
    (B, H, nqb, K*block, D) and attended with one batched matmul, so the cost is
    N * K * block pairs and nothing is N x M. Returns out (B, H, N, D) fp32, lse (B, H, N).
    """
    batch, heads, n, dim = q.shape
    nqb, nkb = key_blocks.shape[0], -(-k.shape[-2] // block)
    per_row = key_blocks.shape[1] * block
    q_blocks = pad_seq(q, nqb * block).view(batch, heads, nqb, block, dim)
    safe = key_blocks.clamp(min=0).to(q.device)

    def gather(x):  # (B, H, M, D) -> (B, H, nqb, K*block, D)
        return pad_seq(x, nkb * block).view(batch, heads, nkb, block, dim)[:, :, safe].reshape(
            batch, heads, nqb, per_row, dim)

    out, lse = masked_attention(q_blocks, gather(k), gather(v), allowed, scale)
    return (out.reshape(batch, heads, nqb * block, dim)[:, :, :n],
            lse.reshape(batch, heads, nqb * block)[:, :, :n])


def self_attention_only(p: dict) -> str | None:
    """`supports` for the sparse patterns: None, or why a case is outside what they define."""
    if (p.get("kv_len") or p["seq_len"]) != p["seq_len"]:
        return "this sparse pattern is defined for self-attention only (kv_len == seq_len)"
    return None


def require_self_attention(name: str, q: torch.Tensor, k: torch.Tensor) -> None:
    if q.shape[-2] != k.shape[-2]:
        raise ValueError(f"{name} is defined for self-attention only (kv_len == seq_len); "
                         f"got seq_len={q.shape[-2]}, kv_len={k.shape[-2]}")


@dataclass(frozen=True)
class Work:
    """What a sparse impl computes per (batch, head), for its cost models."""
    pairs: int  # (query, key) pairs computed, masked ones inside a computed block included
    key_rows: int  # rows of K (and as many of V) gathered into copies
    parts: int = 1  # softmax parts, each with an fp32 output that backward keeps
    largest_part: int | None = None  # pairs of the largest part (forward peaks in it); None: all

    @property
    def peak_pairs(self) -> int:
        return self.pairs if self.largest_part is None else self.largest_part


def pattern_costs(work: Callable[[dict], Work]) -> dict:
    """`flops`, `bytes_moved` and `peak_bytes` for `register`, from a sparse pattern's
    work(params). FLOPs count the computed pairs; bytes are the minimum, q, k, v read
    and o written once (cost.py)."""

    def flops(p: dict) -> float:
        return cost.flops(p, pairs=work(p).pairs)

    def peak_bytes(p: dict) -> float:
        return work_peak_bytes(p, work(p))

    return {"flops": flops, "bytes_moved": cost.bytes_moved, "peak_bytes": peak_bytes}


def work_peak_bytes(p: dict, work: Work) -> float:
    """Extra memory of one call. Forward: three fp32 tensors per pair of the largest
    part at the peak of `masked_attention` (masked scores, shifted scores,
    probabilities), the gathered K and V, its fp32 output and the output.
    Forward+backward: autograd keeps the fp32 probabilities (and a 16-bit copy) of
    every computed pair, each part's fp32 output and the gathered K and V (their
    gradients form next to them), plus the gradients of q, k, v. K and V repeated
    for grouped heads come on top."""
    s = cost.sizes(p)
    b, hq, _, _, _, d = cost.shape(p)
    pairs, gathered = b * hq * work.pairs, b * hq * work.key_rows * d * s.elem
    if s.backward:
        per_pair = 8 + (2 if s.elem < 4 else 0)
        return (s.kv_copies + per_pair * pairs + 3 * gathered + s.q * (4 * (work.parts - 1) + s.elem)
                + s.gradients)
    return s.kv_copies + 12 * b * hq * work.peak_pairs + 2 * gathered + s.q * (4 + s.elem)
