"""Attention over a padded batch, with dropout: the setting of FlashAttention's README benchmark.

The README (v0.1, 2022-05-28) measured "more speedup when using dropout and masking";
its script (benchmarks/benchmark_flash_attention.py) gives every sequence a length drawn
from [N - 20, N) and attention dropout 0.1. Here `pad_tokens` sets that spread: sequence b
keeps `padding_lengths(...)[b]` tokens, keys past it are masked, and the output rows past
it are zero (no token there). `dropout_p` drops attention probabilities (scaled by
1 / (1 - p)), so the timed call does the work a training step does; the correctness check
runs with dropout off (harness.workloads.op_attention), where the impl must equal
`padded_reference`. Self-attention, non-causal (an encoder's, like the README's BERT).
"""
from __future__ import annotations

import torch

from impls.attention import cost, masks
from impls.attention.reference import attention_fp64
from impls.registry import register
from impls.attention.scale import default_scale

README_PAD = 20  # the README script's lengths: randint(N - 20, N)
README_DROPOUT = 0.1


def padding_lengths(batch: int, n: int, pad_tokens: int, device=None) -> torch.Tensor:
    """(batch,) int lengths in [n - pad_tokens, n] (at least 1), the same for a given (batch, n)."""
    if pad_tokens < 0:
        raise ValueError(f"pad_tokens must be >= 0, got {pad_tokens}")
    gen = torch.Generator().manual_seed(n * 7919 + batch)
    cut = torch.randint(0, pad_tokens + 1, (batch,), generator=gen)
    return (n - cut).clamp(min=1).to(device)


def key_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """(B, 1, 1, N) True where the key is a real token."""
    return (torch.arange(n, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]


def _self_attention(p: dict) -> str | None:
    if p.get("causal") and p.get("pad_tokens", README_PAD) > 0:
        return "padding lengths belong to a batch of whole sequences: no causal form with pad_tokens > 0"
    if (p.get("kv_len") or p["seq_len"]) != p["seq_len"]:
        return "padding lengths are per sequence: self-attention only (kv_len == seq_len)"
    return None


def _self_noncausal(p: dict) -> str | None:
    if p.get("causal"):
        return "the padded benchmark has no causal form (the README's BERT-like, non-causal setting)"
    return _self_attention(p)


def padded_peak_bytes(p: dict) -> float:
    """naive's peak, plus one more fp32 score matrix: the padding mask makes a masked copy of
    the scores (and dropout a dropped copy of the probabilities) while the other is alive."""
    return cost.naive_peak_bytes(p) + 4 * cost.sizes(p).scores


@register("attention", "naive_padded", exact=False, reference="padded_reference", supports=_self_noncausal,
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=padded_peak_bytes,
          params={"pad_tokens": README_PAD, "dropout_p": README_DROPOUT})
def naive_padded(q, k, v, *, causal: bool, scale: float | None = None, pad_tokens: int = README_PAD,
                 dropout_p: float = README_DROPOUT) -> torch.Tensor:
    """PyTorch standard attention over a padded batch: (B, H, N, N) scores, padding mask, dropout."""
    if causal:
        raise ValueError("naive_padded is non-causal")
    batch, _, n, dim = q.shape
    k, v = masks.repeat_kv(k, q.shape[1]), masks.repeat_kv(v, q.shape[1])
    lengths = padding_lengths(batch, n, pad_tokens, q.device)
    scale = default_scale(q, scale)
    scores = (q @ k.transpose(-1, -2)).float() * scale  # (B, H, N, N)
    scores = scores.masked_fill(~key_mask(lengths, n), float("-inf"))
    probs = torch.nn.functional.dropout(torch.softmax(scores, dim=-1), p=dropout_p, training=dropout_p > 0)
    out = probs.to(v.dtype) @ v
    return out * key_mask(lengths, n).transpose(-1, -2).to(out.dtype)  # no token, no output


@register("attention", "padded_reference", reference="padded_reference", supports=_self_attention,
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.fp64_peak_bytes,
          params={"pad_tokens": README_PAD})
def padded_reference(q, k, v, *, causal: bool, scale: float | None = None, pad_tokens: int = README_PAD):
    """fp64 attention over the real keys of each sequence (and causal, if asked); rows past a
    sequence's length are zero. With pad_tokens 0 it is exact attention."""
    batch, _, n, _ = q.shape
    lengths = padding_lengths(batch, n, pad_tokens, q.device)
    out = attention_fp64(q, k, v, causal=causal, scale=scale, keep=key_mask(lengths, n))
    return (out * key_mask(lengths, n).transpose(-1, -2)).to(q.dtype)
