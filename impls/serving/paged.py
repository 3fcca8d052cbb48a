"""Paged KV cache: fixed-size blocks, a block table per sequence, a free list.

All keys and values live in one pool (layers, 2, num_blocks, Hkv, block, D).
A sequence owns the blocks listed in its block table; token p of it sits in
block table[p // block] at offset p % block. Blocks are taken from the free
list as a sequence grows and returned when it ends, so memory held tracks
tokens held to within one partial block per sequence (vs a contiguous
max_len reservation per sequence; see kv_store.ContiguousKV, the reference).
Attention reads through the table one block index at a time (paged_attention:
block j of every sequence in one index into the pool, folded into a running
softmax), so no contiguous copy of a sequence's keys is ever made.

Admission is conservative: a sequence is admitted only if the blocks for its
whole length (prompt + output) can be promised, so no running sequence is ever
preempted.
"""
from __future__ import annotations

import math

import torch

from impls.serving.paged_attention import paged_attention


class PagedKVCache:
    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, budget_tokens: int,
                 block_size: int = 16, dtype: torch.dtype = torch.float32, device: str = "cpu",
                 contiguous_max_len: int | None = None):
        self.block_size = block_size
        self.contiguous_max_len = contiguous_max_len  # what a contiguous store would reserve per sequence
        self.num_blocks = budget_tokens // block_size
        self.pool = torch.zeros(n_layers, 2, self.num_blocks, kv_heads, block_size, head_dim, dtype=dtype,
                                device=device)
        self.token_bytes = n_layers * 2 * kv_heads * head_dim * self.pool.element_size()
        self.free: list[int] = list(range(self.num_blocks - 1, -1, -1))  # a stack: pop() takes block 0 first
        self.tables: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}
        self.promised: dict[int, int] = {}  # blocks each sequence may still need
        self.max_len = self.num_blocks * block_size

    def blocks_for(self, n_tokens: int) -> int:
        return math.ceil(n_tokens / self.block_size)

    def can_admit(self, n_tokens: int) -> bool:
        return self.blocks_for(n_tokens) <= len(self.free) - sum(self.promised.values())

    def add(self, seq: int, n_tokens: int) -> None:
        if not self.can_admit(n_tokens):
            raise MemoryError(f"no free blocks for sequence {seq} ({n_tokens} tokens)")
        self.tables[seq], self.lengths[seq] = [], 0
        self.promised[seq] = self.blocks_for(n_tokens)

    def release(self, seq: int) -> None:
        self.free.extend(reversed(self.tables.pop(seq)))
        del self.lengths[seq], self.promised[seq]

    def write(self, layer: int, seq: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v (Hkv, T, D) at positions start..start+T-1, growing the table as needed."""
        self.write_many(layer, [seq], [start], k[:, None], v[:, None])

    def write_many(self, layer: int, seqs: list[int], starts: list[int], k: torch.Tensor,
                   v: torch.Tensor) -> None:
        """k, v (Hkv, S, T, D): T new positions for each of S sequences, in one indexed store."""
        T = k.shape[2]
        slots = []  # (block, offset) of every new position, sequence-major
        for seq, start in zip(seqs, starts):
            self._grow(seq, start + T)
            table = self.tables[seq]
            slots += [(table[p // self.block_size], p % self.block_size) for p in range(start, start + T)]
            self.lengths[seq] = max(self.lengths[seq], start + T)
        blocks, offsets = torch.tensor(slots, device=self.pool.device).T
        self.pool[layer, 0, blocks, :, offsets] = k.flatten(1, 2).transpose(0, 1)  # (S*T, Hkv, D)
        self.pool[layer, 1, blocks, :, offsets] = v.flatten(1, 2).transpose(0, 1)

    def _grow(self, seq: int, n_tokens: int) -> None:
        table = self.tables[seq]
        while len(table) < self.blocks_for(n_tokens):
            if not self.free:
                raise MemoryError("paged KV cache out of blocks")
            table.append(self.free.pop())
            self.promised[seq] = max(0, self.promised[seq] - 1)

    def attend(self, layer: int, seqs: list[int], q: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Causal attention of q (S, H, T, D) at positions (S, T) over each sequence's blocks,
        read block by block through the tables (no contiguous copy of the cache)."""
        return paged_attention(q, self.pool[layer, 0], self.pool[layer, 1], self.block_tables(seqs, positions),
                               positions)

    def block_tables(self, seqs: list[int], positions: torch.Tensor) -> torch.Tensor:
        """(S, nb) block ids covering keys up to the latest query position, 0-padded."""
        n_blocks = self.blocks_for(int(positions.max()) + 1)
        return torch.tensor([(self.tables[s] + [0] * n_blocks)[:n_blocks] for s in seqs], device=self.pool.device)

    def reserved_bytes(self) -> int:
        return sum(len(t) for t in self.tables.values()) * self.block_size * self.token_bytes

    def used_bytes(self) -> int:
        return sum(self.lengths.values()) * self.token_bytes

    def contiguous_bytes(self) -> int:
        """What the same sequences would hold with a max_len buffer each (0 if unknown)."""
        return len(self.tables) * (self.contiguous_max_len or 0) * self.token_bytes

    def gather_reference(self, layer: int, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One sequence's K, V (Hkv, L, D), block by block (for tests)."""
        blocks = [self.pool[layer, :, b] for b in self.tables[seq]]  # each (2, Hkv, block, D)
        kv = torch.cat(blocks, dim=2)[:, :, :self.lengths[seq]]
        return kv[0], kv[1]
