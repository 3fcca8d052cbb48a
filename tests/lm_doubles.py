"""Tiny deterministic language models for decoding and serving tests.

Test doubles only: they keep the LanguageModel contract (forward, init_state,
prefill, step) with one attention layer whose state is a KV cache object that
can be truncated, or one RNN layer whose state is a plain tensor, so the
decoding code is exercised on both kinds of state without the real models.
"""
from __future__ import annotations

import torch
from torch import nn


class ToyKVCache:
    """K and V (B, L, d): 'grow' appends by concatenation, 'static' writes into
    (B, max_len, d) buffers up to a length pointer."""

    def __init__(self, batch: int, max_len: int, d: int, static: bool):
        self.static = static
        size = max_len if static else 0
        self.k, self.v = torch.zeros(batch, size, d), torch.zeros(batch, size, d)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor):
        t = k.shape[1]
        if self.static:
            self.k[:, self.length:self.length + t] = k
            self.v[:, self.length:self.length + t] = v
        else:
            self.k, self.v = torch.cat([self.k, k], 1), torch.cat([self.v, v], 1)
        self.length += t
        return self.k[:, :self.length], self.v[:, :self.length]

    def truncate(self, length: int) -> None:
        self.length = length
        if not self.static:
            self.k, self.v = self.k[:, :length], self.v[:, :length]


class ToyAttentionLM(nn.Module):
    """Embedding + learned positions -> one causal attention layer -> head."""

    def __init__(self, vocab: int = 11, d: int = 16, max_len: int = 64, seed: int = 0, sharpness: float = 3.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab, self.d = vocab, d
        self.emb = nn.Parameter(torch.randn(vocab, d, generator=g))
        self.pos = nn.Parameter(torch.randn(max_len, d, generator=g) * 0.5)
        self.qkv = nn.Linear(d, 3 * d)
        self.head = nn.Linear(d, vocab)
        for p in (*self.qkv.parameters(), *self.head.parameters()):
            p.data = torch.randn(p.shape, generator=g) * sharpness / d ** 0.5

    def _layer(self, tokens: torch.Tensor, start: int, cache: ToyKVCache | None):
        x = self.emb[tokens] + self.pos[start:start + tokens.shape[1]]  # (B, T, d)
        q, k, v = self.qkv(x).chunk(3, -1)
        if cache is not None:
            k, v = cache.append(k, v)
        n, m = q.shape[1], k.shape[1]
        keep = torch.ones(n, m, dtype=torch.bool).tril(m - n)
        att = (q @ k.transpose(1, 2) / self.d ** 0.5).masked_fill(~keep, float("-inf")).softmax(-1)
        return self.head(torch.tanh(x + att @ v))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._layer(tokens, 0, None)

    def init_state(self, batch: int, max_len: int, cache: str = "grow") -> list:
        if cache not in ("grow", "static"):
            raise ValueError(f"toy attention has no '{cache}' cache")
        return [ToyKVCache(batch, max_len, self.d, cache == "static")]

    def prefill(self, tokens: torch.Tensor, state: list):
        return self._layer(tokens, state[0].length, state[0]), state

    def step(self, token: torch.Tensor, state: list):
        logits, state = self.prefill(token[:, None], state)
        return logits[:, 0], state


class ToyRNNLM(nn.Module):
    """Embedding -> tanh RNN -> head; the state is the hidden vector (B, d)."""

    def __init__(self, vocab: int = 11, d: int = 16, seed: int = 0, sharpness: float = 3.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.vocab, self.d = vocab, d
        self.emb = nn.Parameter(torch.randn(vocab, d, generator=g))
        self.w_h = nn.Parameter(torch.randn(d, d, generator=g) / d ** 0.5)
        self.head = nn.Linear(d, vocab)
        self.head.weight.data = torch.randn(vocab, d, generator=g) * sharpness / d ** 0.5

    def _run(self, tokens: torch.Tensor, h: torch.Tensor):
        outs = []
        for t in range(tokens.shape[1]):
            h = torch.tanh(self.emb[tokens[:, t]] + h @ self.w_h)
            outs.append(h)
        return self.head(torch.stack(outs, 1)), h

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._run(tokens, torch.zeros(tokens.shape[0], self.d))[0]

    def init_state(self, batch: int, max_len: int) -> list:
        return [torch.zeros(batch, self.d)]

    def prefill(self, tokens: torch.Tensor, state: list):
        logits, h = self._run(tokens, state[0])
        return logits, [h]

    def step(self, token: torch.Tensor, state: list):
        logits, state = self.prefill(token[:, None], state)
        return logits[:, 0], state


def toy_models() -> dict[str, nn.Module]:
    return {"attention": ToyAttentionLM(), "rnn": ToyRNNLM()}
