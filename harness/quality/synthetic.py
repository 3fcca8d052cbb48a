"""Long-range synthetic tasks, generated from a seed: selective copying and
multi-query associative recall (MQAR).

Each batch is a next-token problem over one sequence: `inputs` (B, T),
`targets` (B, T) = inputs shifted by one, and `mask` (B, T) True where the
target is part of the answer; loss and accuracy count only those positions.
Token 0 is noise/blank in both tasks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NOISE = 0


@dataclass(frozen=True)
class Batch:
    inputs: torch.Tensor  # (B, T) long
    targets: torch.Tensor  # (B, T) long
    mask: torch.Tensor  # (B, T) bool, True at answer positions


def _shifted(sequences: torch.Tensor, answer: torch.Tensor) -> Batch:
    """sequences (B, T+1), answer (B, T+1) bool over positions of the sequence that must be predicted."""
    return Batch(inputs=sequences[:, :-1], targets=sequences[:, 1:], mask=answer[:, 1:])


def selective_copy_vocab(n_symbols: int) -> int:
    return n_symbols + 2  # noise, separator, symbols


def selective_copy(batch: int, seq_len: int, gen: torch.Generator, n_memorize: int = 8,
                   n_symbols: int = 8) -> Batch:
    """Selective copying (Gu & Dao, 2023): `n_memorize` symbols scattered among noise
    in a context, then a separator, then the symbols in order.

    The sequence has seq_len + 1 tokens: context of seq_len - n_memorize, separator, answer.
    """
    separator, first_symbol = 1, 2
    context = seq_len - n_memorize
    if context < n_memorize:
        raise ValueError(f"selective copy needs seq_len >= 2 * n_memorize (got {seq_len}, {n_memorize})")
    sequences = torch.full((batch, seq_len + 1), NOISE, dtype=torch.long)
    answer = torch.zeros_like(sequences, dtype=torch.bool)
    symbols = torch.randint(first_symbol, first_symbol + n_symbols, (batch, n_memorize), generator=gen)
    for row in range(batch):
        slots = torch.randperm(context, generator=gen)[:n_memorize].sort().values
        sequences[row, slots] = symbols[row]
    sequences[:, context] = separator
    sequences[:, context + 1:] = symbols
    answer[:, context + 1:] = True
    return _shifted(sequences, answer)


def mqar_vocab(n_keys: int, n_values: int) -> int:
    return 1 + n_keys + n_values  # noise, keys, values


def mqar(batch: int, seq_len: int, gen: torch.Generator, n_pairs: int = 8, n_keys: int = 32,
         n_values: int = 32) -> Batch:
    """Multi-query associative recall (Arora et al., 2023): `n_pairs` key-value pairs,
    then every key queried once, in random order, at random places in a noise tail;
    the token after each queried key must be its value.

    The sequence has seq_len + 1 tokens: 2 * n_pairs of pairs, then the tail.
    """
    if n_pairs > n_keys:
        raise ValueError(f"mqar needs n_pairs <= n_keys (got {n_pairs} > {n_keys})")
    tail = seq_len + 1 - 2 * n_pairs
    if tail // 2 < n_pairs:
        raise ValueError(f"mqar needs seq_len >= 4 * n_pairs (got seq_len={seq_len}, n_pairs={n_pairs})")
    sequences = torch.full((batch, seq_len + 1), NOISE, dtype=torch.long)
    answer = torch.zeros_like(sequences, dtype=torch.bool)
    for row in range(batch):
        keys = 1 + torch.randperm(n_keys, generator=gen)[:n_pairs]
        values = 1 + n_keys + torch.randint(0, n_values, (n_pairs,), generator=gen)
        sequences[row, 0:2 * n_pairs:2] = keys
        sequences[row, 1:2 * n_pairs:2] = values
        order = torch.randperm(n_pairs, generator=gen)
        slots = 2 * n_pairs + 2 * torch.randperm(tail // 2, generator=gen)[:n_pairs]
        sequences[row, slots] = keys[order]
        sequences[row, slots + 1] = values[order]
        answer[row, slots + 1] = True
    return _shifted(sequences, answer)
