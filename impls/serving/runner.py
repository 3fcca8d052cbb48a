"""Runs a Transformer LanguageModel over sequences at different lengths at once.

The LM contract's state has one length for the whole batch, which continuous
batching cannot use: its sequences are all at different positions. This
runner drives the model's own modules (embedding, blocks' norms and ffns, the
attention mixer's projections, RoPE and output) but keeps keys and values in a
serving KV store (contiguous or paged), which attends each query to its own
sequence's keys up to its position (`store.attend`). Position-wise work runs on all tokens of all sequences as one row.

    prefill(store, seq, prompt (T,)) -> logits (T, V)      one sequence
    decode(store, seqs, tokens (S,)) -> logits (S, V)      one token each

Supported: attention mixers with rope or absolute positions, pre/post norm.
The store computes exact causal attention itself, so the mixer's attention impl
must be an exact one (naive, sdpa_*, chunked, triton_flash, ...: the same numbers);
an approximate impl (a sparse pattern, low-rank) or ALiBi needs other masks and is
refused with `Unsupported` (a `skipped` case), never served as dense attention.
"""
from __future__ import annotations

from typing import Any

import torch

from impls import registry
from impls.errors import Unsupported
from impls.mixers.attention import Attention


class AttentionRunner:
    def __init__(self, model: Any):
        for block in getattr(model, "blocks", []):
            mixer = block.mixer
            if not isinstance(mixer, Attention):
                raise Unsupported(f"serving needs attention mixers, got {type(mixer).__name__}")
            if mixer.positional == "alibi":
                raise Unsupported("serving does not support ALiBi attention")
            if not registry.get("attention", mixer.attention_name).exact:
                raise Unsupported(f"serving attends with its KV store's exact attention; '{mixer.attention_name}' "
                                  "is an approximation it would not reproduce")
        if not getattr(model, "blocks", None):
            raise ValueError(f"{type(model).__name__} is not a LanguageModel with attention blocks")
        self.model = model
        first = model.blocks[0].mixer
        self.n_layers, self.kv_heads, self.head_dim = len(model.blocks), first.kv_heads, first.head_dim

    @torch.no_grad()
    def prefill(self, store: Any, seq: int, prompt: torch.Tensor) -> torch.Tensor:
        return self._run(store, [seq], prompt, start=[0])

    @torch.no_grad()
    def decode(self, store: Any, seqs: list[int], tokens: torch.Tensor) -> torch.Tensor:
        return self._run(store, seqs, tokens, start=[store.lengths[s] for s in seqs])

    def _run(self, store: Any, seqs: list[int], tokens: torch.Tensor, start: list[int]) -> torch.Tensor:
        """S sequences with T new tokens each (S = 1 or T = 1): tokens (S*T,) -> logits (S*T, V)."""
        S = len(seqs)
        T = tokens.shape[0] // S
        model = self.model
        device = model.embed.weight.device
        starts = torch.tensor(start, device=device)
        positions = (starts[:, None] + torch.arange(T, device=device)[None]).reshape(-1)  # (S*T,)
        x = model.embed(tokens.to(device))[None]  # (1, S*T, d): every token a time step of one row
        if model.positional is not None:
            x = x + model.positional(positions).to(x.dtype)
        for layer, block in enumerate(model.blocks):
            def mix(h, layer=layer, mixer=block.mixer):
                q, k, v = mixer.project(h, positions)  # q (1, H, S*T, hd), k, v (1, Hkv, S*T, hd)
                q = q[0].view(-1, S, T, self.head_dim).transpose(0, 1)  # (S, H, T, hd)
                k, v = (t[0].view(-1, S, T, self.head_dim) for t in (k, v))  # (Hkv, S, T, hd)
                store.write_many(layer, seqs, start, k, v)
                y = store.attend(layer, seqs, q, positions.view(S, T))  # (S, H, T, hd)
                y = y.transpose(0, 1).reshape(1, -1, S * T, self.head_dim)  # (1, H, S*T, hd)
                return mixer.merge_heads(y), None

            x, _ = block.around(x, mix)
        return model.head(model.norm(x))[0]
