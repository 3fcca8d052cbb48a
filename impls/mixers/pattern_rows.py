"""Rows of a sparse attention pattern, for the queries of a KV-cached attention mixer.

The sparse impls (local, longformer, bigbird, sparse_strided, flex_window and
their references) define their pattern over a whole sequence, self-attention
only (kv_len == seq_len). Decoding asks for other rows: the queries at absolute
positions t0..t1 over the cached keys. A causal pattern's row t depends on t
alone, not on how long the sequence is (bigbird's random blocks for block a are
drawn among blocks <= a, in order, from a fixed seed), so those rows are rows
t0..t1 of the pattern's own (n x n) mask, taken from the impl's module. The
attention mixer attends over them with masked_attention, which equals the
impl's full-sequence forward at those rows.

`causal_rows(name, params, positions_q, positions_k) -> (N, M) bool` for every
name in PATTERNS. The mask is built once for a power-of-two n and cached, so
decoding token by token does not rebuild it at every step (n x n booleans:
16 MB at n = 4096).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from impls.attention.bigbird import bigbird_mask
from impls.attention.local import local_mask
from impls.attention.longformer import longformer_mask
from impls.attention.sparse_strided import sparse_strided_mask

Mask = Callable[[int, dict], torch.Tensor]  # (n, the impl's params) -> (n, n) bool, True = attend


def _local(n: int, p: dict) -> torch.Tensor:
    return local_mask(n, int(p["window"]), True)


def _longformer(n: int, p: dict) -> torch.Tensor:
    return longformer_mask(n, int(p["window"]), int(p["global_tokens"]), True)


def _bigbird(n: int, p: dict) -> torch.Tensor:
    keys = ("block_size", "window_blocks", "global_blocks", "num_random_blocks", "pattern_seed")
    return bigbird_mask(n, True, **{key: int(p[key]) for key in keys})


def _strided(n: int, p: dict) -> torch.Tensor:
    return sparse_strided_mask(n, int(p["stride"]))


# flex_window is the same window as local; it takes cached rows itself and needs these rows
# only where a window KV cache bands them further.
PATTERNS: dict[str, Mask] = {
    "local": _local, "local_reference": _local, "flex_window": _local, "flex_window_reference": _local,
    "longformer": _longformer, "longformer_reference": _longformer,
    "bigbird": _bigbird, "bigbird_reference": _bigbird,
    "sparse_strided": _strided, "sparse_strided_reference": _strided,
}


def causal_rows(name: str, params: dict[str, Any], positions_q: torch.Tensor,
                positions_k: torch.Tensor) -> torch.Tensor:
    """(N, M) bool: which keys at positions_k (M,) each query at positions_q (N,) sees under
    impl `name`'s causal pattern with `params` (the impl's params, defaults filled in)."""
    n = int(max(positions_q.max(), positions_k.max())) + 1
    full = _mask(name, tuple(sorted(params.items())), 1 << (n - 1).bit_length(), str(positions_q.device))
    return full[positions_q][:, positions_k] & (positions_k[None, :] <= positions_q[:, None])


@lru_cache(maxsize=8)
def _mask(name: str, items: tuple, n: int, device: str) -> torch.Tensor:
    return PATTERNS[name](n, dict(items)).to(device)
