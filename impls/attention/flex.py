"""PyTorch FlexAttention with block masks: causal, and a sliding window.

flex_attention takes a `mask_mod(b, h, q_idx, kv_idx) -> bool`; create_block_mask
turns it into a block-sparse mask so fully masked tiles are skipped. Masks
are built once per shape and cached (building one costs a pass over the
blocks). On CUDA the op is compiled with torch.compile, which is how it is
meant to run (eager flex is an unfused reference path); on the CPU it runs
eagerly, and torch has no flex backward on the CPU. Availability is probed
with a tiny call and cached, as for SDPA.

flex_window: the sliding window of masks.py (query i sees key j iff
|(i + M - N) - j| < window, and j is not in its future when causal), the same
pattern as `local` for the same `window`.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import torch

from impls.attention import cost, masks
from impls.attention.reference import attention_fp64
from impls.precision import FLOAT_DTYPES
from impls.registry import register

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # torch < 2.5
    flex_attention = None

BLOCK = 128  # the block mask's tile (torch's default), the unit of work the fused kernel skips


@lru_cache(maxsize=64)
def _block_mask(n: int, m: int, causal: bool, window: int | None, device: str):
    """The flex block mask for one shape, or None (no masking at all)."""
    offset = m - n
    if window is None and not causal:
        return None
    if window is None:
        def mask_mod(b, h, q_idx, kv_idx):
            return kv_idx <= q_idx + offset
    else:
        def mask_mod(b, h, q_idx, kv_idx):
            return masks.in_window(q_idx + offset, kv_idx, window=window, causal=causal)
    return create_block_mask(mask_mod, None, None, n, m, device=device, BLOCK_SIZE=BLOCK)


@lru_cache(maxsize=None)
def _compiled():
    # One compile per shape (dynamic=False). A sweep reuses its worker process over many
    # shapes; past dynamo's recompile limit (8) flex would silently fall back to the slow
    # eager path, so the limit is raised for this process.
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 256)
    return torch.compile(flex_attention, dynamic=False)


def _flex(q, k, v, causal: bool, scale: float | None, window: int | None) -> torch.Tensor:
    mask = _block_mask(q.shape[-2], k.shape[-2], causal, window, str(q.device))
    run = _compiled() if q.is_cuda else flex_attention
    return run(q, k, v, block_mask=mask, scale=scale, enable_gqa=k.shape[1] != q.shape[1])


@lru_cache(maxsize=None)
def _probe(device: str, precision: str) -> str | None:
    """None if flex attention runs here, else the reason."""
    if flex_attention is None:
        return f"torch {torch.__version__} has no flex_attention (needs torch >= 2.5)"
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    q = torch.randn(1, 2, 16, 16, device=device, dtype=FLOAT_DTYPES[precision])
    try:
        with warnings.catch_warnings():  # eager flex warns that it is unfused; the module docstring says so
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            _flex(q, q[:, :1], q[:, :1], causal=True, scale=None, window=4)
    except Exception as err:  # any failure (no kernel, no compiler) means: not here
        return f"flex_attention does not run for {precision} on {device} with torch {torch.__version__}: " \
               f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
    return None


def _no_cpu_backward(p: dict) -> str | None:
    if p.get("device") == "cpu" and p.get("direction") == "fwd_bwd":
        return "torch has no FlexAttention backward on the CPU"
    return None


# Fused on CUDA, flex keeps only the output and a log-sum-exp per row (as FlashAttention);
# eager on the CPU it materialises the scores (cost.flex_peak_bytes models both).
@register("attention", "flex", requires=(_probe,), supports=_no_cpu_backward, flops=cost.flops,
          bytes_moved=cost.bytes_moved, peak_bytes=cost.flex_peak_bytes, compiles_per_shape=True)
def flex(q, k, v, *, causal: bool, scale: float | None = None) -> torch.Tensor:
    """torch flex_attention with a causal block mask (compiled on CUDA, eager on the CPU)."""
    return _flex(q, k, v, causal, scale, None)


def window_block_pairs(n: int, m: int, window: int, causal: bool, block: int = BLOCK) -> int:
    """(query, key) pairs per head in the (block x block) tiles the window touches:
    what the fused kernel computes, partly masked tiles whole. Each query tile's keys
    form one contiguous range, so its tiles are those covering that range."""
    pairs, offset = 0, m - n
    for start in range(0, n, block):
        end = min(start + block, n)
        first = max(0, start + offset - window + 1)
        last = min(m - 1, end - 1 + offset + (0 if causal else window - 1))
        if last >= first:
            pairs += (end - start) * (min(m, (last // block + 1) * block) - first // block * block)
    return pairs


def window_flops(p: dict) -> float:
    """The tiles the window touches on CUDA; every (query, key) pair on the CPU, where
    eager flex computes the dense scores and masks them."""
    _, _, _, n, m, _ = cost.shape(p)
    if p.get("device") != "cuda":
        return cost.flops(p, pairs=n * m)
    return cost.flops(p, pairs=window_block_pairs(n, m, int(p.get("window", 256)), bool(p.get("causal"))))


@register("attention", "flex_window", requires=(_probe,), supports=_no_cpu_backward, exact=False,
          reference="flex_window_reference", flops=window_flops, bytes_moved=cost.bytes_moved,
          params={"window": 256}, peak_bytes=cost.flex_peak_bytes, compiles_per_shape=True)
def flex_window(q, k, v, *, causal: bool, scale: float | None = None, window: int = 256) -> torch.Tensor:
    """torch flex_attention with the sliding-window mask of masks.py (|i - j| < window)."""
    return _flex(q, k, v, causal, scale, int(window))


# Its own reference (as local_reference): checked against itself, and its distance from
# exact attention is what a run reports for it.
@register("attention", "flex_window_reference", reference="flex_window_reference", params={"window": 256},
          flops=cost.flops, bytes_moved=cost.bytes_moved, peak_bytes=cost.fp64_peak_bytes)
def flex_window_reference(q, k, v, *, causal: bool, scale: float | None = None, window: int = 256) -> torch.Tensor:
    """Sliding-window attention in float64: exact attention restricted to the window."""
    keep = masks.window(q.shape[-2], k.shape[-2], int(window), causal, q.device)
    return attention_fp64(q, k, v, causal=False, scale=scale, keep=keep).to(q.dtype)
