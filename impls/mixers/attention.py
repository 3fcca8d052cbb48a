"""Causal multi-head self-attention block that runs any registered attention impl.

    x (+ absolute positions) -> q, k, v projections -> (RoPE on q, k) -> attention -> out

Queries have `heads` heads, keys/values `kv_heads` (GQA; MQA when 1); one
fused projection makes all three. With a KV cache (init_state/prefill/step) new
positions come from the cache length, and the new queries attend to the cached
keys with the attention interface's bottom-right causal alignment, so any exact
attention impl works unchanged. A single new query sees every cached key, so an
exact impl is called without a mask (causal=False) for it.

Under torch.compile a step over a static cache keeps every shape static: the new
key and value are written at the cache's position tensor and the query attends
over the whole buffer, masked past that position, so one graph (on a GPU one
CUDA graph) serves every position (`_static_step`). Every exact impl attends
there through the same masked formula (masked_attention).

What the block asks of the impl is checked when it is built, and a request the
impl does not define raises impls.errors.Unsupported (a case `skipped`, with
the reason):
- a causal form: linformer has none, so it cannot be a decoder mixer (it can
  be an encoder's attention, non-causal: impls/models/seq2seq.py);
- cached rows: an impl defined for self-attention only (the sparse patterns,
  flash_attn_v1) computes forward and a prefill from empty itself; the rows of
  later queries over cached keys are its pattern's rows (pattern_rows.py;
  plain causal for an exact impl) through masked_attention, equal to its
  full-sequence forward at those rows;
- a score bias for ALiBi: only naive, reference, sdpa_math and sdpa_efficient
  take one (score_bias.py); ALiBi with any other impl is refused, never run on
  a stand-in.
A window KV cache bands a multi-token prefill, which no impl's mask expresses:
those calls go through masked_attention too (or the biased impl, with ALiBi).
Absolute positions ("sinusoidal", "learned") are added to the block's input; a
language model that adds them to its embeddings should build this block with
positional="none".
"""
from __future__ import annotations

from itertools import chain
from typing import Any

import torch
from torch import nn

from impls import positional as positional_encodings
from impls.errors import Unsupported
from impls.mixers.base import Mixer
from impls.mixers.kv_cache import GrowingKVCache, StaticKVCache, WindowKVCache
from impls.mixers.masked_attention import masked_attention
from impls.mixers.pattern_rows import PATTERNS, causal_rows
from impls.mixers.score_bias import BIASED, require_bias
from impls.positional import POSITIONALS, alibi
from impls.positional.rope import apply_rope
from impls.registry import Impl, refusal, register

CACHES = ("grow", "static", "window")


@register("mixer", "attention",
          params={"attention": "sdpa_math", "heads": 4, "kv_heads": None, "positional": "rope",
                  "max_len": 2048, "rope_base": 10000.0, "attention_params": {}},
          doc="causal multi-head self-attention (GQA, RoPE/ALiBi/absolute) over any attention impl")
class Attention(Mixer):
    """State: a KV cache (kv_cache.py). head_dim = d_model // heads."""

    def __init__(self, d_model: int, attention: str = "sdpa_math", heads: int = 4,
                 kv_heads: int | None = None, positional: str = "rope", max_len: int = 2048,
                 rope_base: float = 10000.0, attention_params: dict[str, Any] | None = None):
        super().__init__()
        kv_heads = kv_heads or heads
        if positional not in POSITIONALS:
            raise ValueError(f"positional must be one of {POSITIONALS}, got {positional!r}")
        if d_model % heads or heads % kv_heads:
            raise ValueError(f"need heads | d_model and kv_heads | heads; got d_model={d_model}, "
                             f"heads={heads}, kv_heads={kv_heads}")
        from impls import registry  # at build time: the registry imports this module

        impl = registry.get("attention", attention)
        self.attention_fn, self.attention_name = impl.fn, attention
        self.attention_params = dict(attention_params or {})
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d_model // heads
        self.pattern_params = {**impl.params, **self.attention_params}
        self.takes_cached_rows, self.pattern = self._check_impl(impl, positional)
        # exact softmax attention over every key (not a pattern's reference, which is exact to itself)
        self.exact = impl.exact and impl.reference is None
        # one decode step of MQA/GQA: a group's query heads attend as rows of one head (below)
        # (full exact attention only: a pattern's rows depend on each query's own position)
        self.grouped_step = impl.exact and impl.reference in (None, "reference") and kv_heads < heads
        self.positional, self.rope_base, self.max_len = positional, rope_base, max_len
        # [q | k | v] from one matmul: a decode step reads the three weights in one call
        self.qkv_proj = nn.Linear(d_model, (heads + 2 * kv_heads) * self.head_dim, bias=False)
        self.out_proj = nn.Linear(heads * self.head_dim, d_model, bias=False)
        self.absolute = (positional_encodings.get(positional)(d_model, max_len)
                         if positional in ("sinusoidal", "learned") else None)

    def _check_impl(self, impl: Impl, positional: str) -> tuple[bool, str | None]:
        """(whether the impl computes cached rows itself, the pattern name for rows it does
        not) or Unsupported: see the module docstring."""
        shape = {"causal": True, "heads": self.heads, "kv_heads": self.kv_heads, "head_dim": self.head_dim,
                 **self.attention_params}
        reason = refusal(impl, seq_len=2, kv_len=2, **shape)
        if reason:
            raise Unsupported(f"attention impl '{impl.name}' cannot be a causal (decoder) mixer: {reason}")
        if positional == "alibi":
            require_bias(impl.name)
        cached = refusal(impl, seq_len=1, kv_len=2, **shape) is None
        if not cached and impl.name not in PATTERNS and not impl.exact:
            raise Unsupported(f"attention impl '{impl.name}' is defined for self-attention only and the "
                              "attention mixer knows no causal pattern for its cached rows (pattern_rows.py)")
        return cached, impl.name if impl.name in PATTERNS else None

    def init_state(self, batch: int, max_len: int, cache: str = "grow", window: int | None = None):
        """An empty KV cache: "grow" (concatenating), "static" (preallocated to
        max_len) or "window" (keeps the last `window` positions)."""
        if cache == "grow":
            return GrowingKVCache()
        if cache == "static":
            device = next(chain(self.parameters(), self.buffers())).device  # int8 weights are buffers
            return StaticKVCache(batch, self.kv_heads, max_len, self.head_dim, device)
        if cache == "window":
            if window is None:
                raise ValueError("cache='window' needs window=<positions kept>")
            return WindowKVCache(window)
        raise ValueError(f"cache must be one of {CACHES}, got {cache!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model), no cache."""
        positions = torch.arange(x.shape[1], device=x.device)
        q, k, v = self.project(x, positions)
        return self.merge_heads(self._attend(q, k, v, key_start=0, window=None))

    def prefill(self, x: torch.Tensor, cache) -> tuple[torch.Tensor, Any]:
        """x (B, T, d_model) continuing at position cache.length; the cache is updated in place."""
        positions = torch.arange(cache.length, cache.length + x.shape[1], device=x.device)
        q, k, v = self.project(x, positions)
        k_all, v_all, key_start = cache.update(k, v)
        return self.merge_heads(self._attend(q, k_all, v_all, key_start, cache.window)), cache

    def step(self, x_t: torch.Tensor, cache) -> tuple[torch.Tensor, Any]:
        """x_t (B, d_model) -> (B, d_model): one new position, the cache updated in place."""
        if isinstance(cache, StaticKVCache) and torch.compiler.is_compiling():
            return self._static_step(x_t, cache), cache
        y, cache = self.prefill(x_t[:, None], cache)
        return y[:, 0], cache

    def _static_step(self, x_t: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        """The step in tensor operations of fixed shape: the position a tensor, the attention
        over the whole buffer with the unwritten positions masked out, as the textbook formula,
        which inductor fuses (torch's flash kernel given a mask ran 1.3-1.5x slower per token
        inside the compiled graph of a 4-layer model here). ALiBi and sparse patterns keep their
        own rows over the filled part (reading the length back: a graph break)."""
        q, k, v = self.project(x_t[:, None], cache.position.view(1))
        k_all, v_all, keep = cache.update_one(k, v)
        if self.positional == "alibi" or not self.exact:
            filled = cache.length
            y = self._attend(q, k_all[:, :, :filled], v_all[:, :, :filled], 0, None)
        else:
            y = masked_attention(q, k_all, v_all, keep=keep)
        return self.merge_heads(y)[:, 0]

    def project(self, x: torch.Tensor, positions: torch.Tensor):
        """x (B, T, d), positions (T,) -> q (B, H, T, hd), k, v (B, Hkv, T, hd)."""
        if self.absolute is not None:
            x = x + self.absolute(positions).to(x.dtype)
        b, t, _ = x.shape
        q, k, v = self.qkv_proj(x).split([self.heads * self.head_dim, self.kv_heads * self.head_dim,
                                          self.kv_heads * self.head_dim], dim=-1)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.positional == "rope":
            q, k = apply_rope(q, positions, self.rope_base), apply_rope(k, positions, self.rope_base)
        return q, k, v

    def _attend(self, q, k, v, key_start: int, window: int | None) -> torch.Tensor:
        """q (B, H, N, hd) for the last N of the M key positions key_start..key_start+M-1."""
        n, m = q.shape[2], k.shape[2]
        banded = window is not None and m > window + 1  # some query would see too far back
        own_rows = n == m or self.takes_cached_rows
        if self.positional != "alibi" and not banded and own_rows:
            if n == 1 and self.grouped_step:
                return self._grouped_step(q, k, v)
            lone_query = n == 1 and self.exact  # the newest position sees every key: no mask
            return self.attention_fn(q, k, v, causal=not lone_query, **self.attention_params)
        pos_k = torch.arange(key_start, key_start + m, device=q.device)
        pos_q = pos_k[m - n:]
        keep = (causal_rows(self.pattern, self.pattern_params, pos_q, pos_k) if self.pattern
                else pos_k[None, :] <= pos_q[:, None])
        if window is not None:
            keep &= pos_k[None, :] >= pos_q[:, None] - window
        if self.positional == "alibi":
            return BIASED[self.attention_name](q, k, v, keep, alibi.bias(self.heads, pos_q, pos_k))
        return masked_attention(q, k, v, keep=keep)

    def _grouped_step(self, q, k, v) -> torch.Tensor:
        """One new position, q (B, H, 1, hd) over all M cached keys (B, Hkv, M, hd): the H / Hkv
        query heads sharing a KV head (heads kv * G .. kv * G + G - 1) attend as G rows of that
        head, so the shared keys and values are read once instead of copied to every query head
        (the saving MQA and GQA exist for). A lone last query sees every key: causal = False."""
        b, h, _, d = q.shape
        rows = q.reshape(b, self.kv_heads, h // self.kv_heads, d)  # (B, Hkv, G, hd)
        return self.attention_fn(rows, k, v, causal=False, **self.attention_params).view(b, h, 1, d)

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, H, T, hd) -> (B, T, d_model): the heads joined and projected. With `project`,
        public so a server that keeps its own (paged) KV cache can reuse the layer's weights."""
        b, _, t, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))
