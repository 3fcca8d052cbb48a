"""Contiguous KV storage for serving: one buffer per sequence, reserved up front.

The baseline a paged cache is compared with: every admitted sequence reserves
room for max_len tokens (reserve="max", vLLM's "Orca (Max)"), or exactly the
length it will reach (reserve="oracle", "Orca (Oracle)", which knows the output
length in advance), whether it uses them yet or not. Both stores
share one interface, used by runner.AttentionRunner:

    can_admit(n_tokens) / add(seq, n_tokens) / release(seq)
    write(layer, seq, start, k, v)      k, v (Hkv, T, D) at positions start..
    write_many(layer, seqs, starts, k, v)  k, v (Hkv, S, T, D), S sequences at once
    attend(layer, seqs, q, positions)   -> causal attention of q (S, H, T, D) at
                                           positions (S, T) over each sequence's keys
    reserved_bytes() / used_bytes()     KV memory held vs holding real tokens
"""
from __future__ import annotations

import torch

from impls.mixers.masked_attention import masked_attention


class ContiguousKV:
    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, max_len: int,
                 budget_tokens: int, dtype: torch.dtype = torch.float32, device: str = "cpu",
                 reserve: str = "max"):
        if reserve not in ("max", "oracle"):
            raise ValueError(f"unknown reserve '{reserve}'; valid: max, oracle")
        self.shape = (n_layers, 2, kv_heads, max_len, head_dim)
        self.max_len, self.dtype, self.device, self.reserve = max_len, dtype, device, reserve
        self.budget_tokens = budget_tokens
        self.reserved: dict[int, int] = {}  # positions each sequence holds
        self.token_bytes = n_layers * 2 * kv_heads * head_dim * torch.empty(0, dtype=dtype).element_size()
        self.buffers: dict[int, torch.Tensor] = {}
        self.lengths: dict[int, int] = {}  # positions written (the next write starts here)
        # positions the sequence was admitted for: a finished sequence that static batching
        # keeps stepping writes past them, and those positions hold garbage, not tokens
        self.needed: dict[int, int] = {}

    def reservation(self, n_tokens: int) -> int:
        return self.max_len if self.reserve == "max" else n_tokens

    def can_admit(self, n_tokens: int) -> bool:
        held = sum(self.reserved.values())
        return n_tokens <= self.max_len and held + self.reservation(n_tokens) <= self.budget_tokens

    def add(self, seq: int, n_tokens: int) -> None:
        if not self.can_admit(n_tokens):
            raise MemoryError(f"no room for sequence {seq} ({n_tokens} tokens)")
        self.reserved[seq] = self.reservation(n_tokens)  # what the policy holds; the budget counts this
        # the buffer itself is max_len long in both modes: static batching keeps writing past `needed`
        self.buffers[seq] = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        self.lengths[seq], self.needed[seq] = 0, n_tokens

    def release(self, seq: int) -> None:
        del self.buffers[seq], self.lengths[seq], self.needed[seq], self.reserved[seq]

    def write(self, layer: int, seq: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        end = start + k.shape[1]
        self.buffers[seq][layer, 0, :, start:end] = k
        self.buffers[seq][layer, 1, :, start:end] = v
        self.lengths[seq] = max(self.lengths[seq], end)

    def write_many(self, layer: int, seqs: list[int], starts: list[int], k: torch.Tensor,
                   v: torch.Tensor) -> None:
        """k, v (Hkv, S, T, D): T new positions for each of S sequences."""
        for i, (seq, start) in enumerate(zip(seqs, starts)):
            self.write(layer, seq, start, k[:, i], v[:, i])

    def attend(self, layer: int, seqs: list[int], q: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The sequences' buffers stacked up to the latest position, then masked softmax."""
        n_keys = int(positions.max()) + 1
        kv = torch.stack([self.buffers[s][layer, :, :, :n_keys] for s in seqs])  # (S, 2, Hkv, n, D)
        keep = torch.arange(n_keys, device=q.device)[None, None, None, :] <= positions[:, None, :, None]
        return masked_attention(q, kv[:, 0], kv[:, 1], keep=keep)  # (S, H, T, D)

    def reserved_bytes(self) -> int:
        return sum(self.reserved.values()) * self.token_bytes

    def used_bytes(self) -> int:
        return sum(min(n, self.needed[s]) for s, n in self.lengths.items()) * self.token_bytes
