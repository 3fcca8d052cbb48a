"""Numbers to English words: a generated seq2seq task with a held-out test set.

Source: the digits of n (0 <= n <= 999,999) as tokens; target: its words in
American English without "and" (402000 -> "four hundred two thousand").
Token ids: 0 is padding in both vocabularies; the target also has <bos>, <eos>.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
MAX_VALUE = 999_999
MAX_DIGITS = 6

PAD, BOS, EOS = 0, 1, 2
WORDS = ("<pad>", "<bos>", "<eos>", *ONES, *TENS[2:], "hundred", "thousand")
WORD_ID = {w: i for i, w in enumerate(WORDS)}
SRC_VOCAB = 11  # padding + ten digits
TGT_VOCAB = len(WORDS)


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(TENS[n // 10])
        n %= 10
        if n:
            words.append(ONES[n])
    elif n or not words:
        words.append(ONES[n])
    return words


def to_words(n: int) -> str:
    """English words for 0 <= n <= 999,999."""
    if not 0 <= n <= MAX_VALUE:
        raise ValueError(f"to_words covers 0..{MAX_VALUE}, got {n}")
    thousands, rest = divmod(n, 1000)
    words = _below_thousand(thousands) + ["thousand"] if thousands else []
    if rest or not words:
        words += _below_thousand(rest)
    return " ".join(words)


def encode_source(n: int) -> list[int]:
    return [1 + int(d) for d in str(n)]


def encode_target(n: int) -> list[int]:
    return [WORD_ID[w] for w in to_words(n).split()]


def decode_target(ids: list[int]) -> str:
    """Words up to the first <eos>, skipping padding and <bos>."""
    words = []
    for i in ids:
        if i == EOS:
            break
        if i not in (PAD, BOS):
            words.append(WORDS[i])
    return " ".join(words)


@dataclass(frozen=True)
class Split:
    train: torch.Tensor  # numbers (1-D long) to train on
    test: torch.Tensor  # held-out numbers, never seen in training


def split(seed: int, n_test: int = 500, max_value: int = MAX_VALUE) -> Split:
    """A seeded permutation of 0..max_value: the first n_test numbers are the test set."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(max_value + 1, generator=gen)
    return Split(train=order[n_test:], test=order[:n_test])


@dataclass(frozen=True)
class Pairs:
    src: torch.Tensor  # (B, S) digits, right-padded with PAD
    tgt_in: torch.Tensor  # (B, L) <bos> + words, padded
    tgt_out: torch.Tensor  # (B, L) words + <eos>, padded
    numbers: list[int]


def _pad(rows: list[list[int]], width: int = 0) -> torch.Tensor:
    out = torch.full((len(rows), max(width, *map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


def pairs(numbers: list[int]) -> Pairs:
    """Sources are padded to MAX_DIGITS always, so a number's encoding never depends on
    its batch-mates (the attention interface has no key mask; models learn to ignore PAD)."""
    targets = [encode_target(n) for n in numbers]
    return Pairs(src=_pad([encode_source(n) for n in numbers], MAX_DIGITS), tgt_in=_pad([[BOS] + t for t in targets]),
                 tgt_out=_pad([t + [EOS] for t in targets]), numbers=list(numbers))


def sample(pool: torch.Tensor, batch: int, gen: torch.Generator, max_digits: int | None = None) -> Pairs:
    """`batch` numbers drawn from `pool`; with `max_digits`, only numbers below 10**max_digits
    (a length curriculum raises it during training)."""
    if max_digits is not None:
        pool = pool[pool < 10 ** max_digits]
    picks = pool[torch.randint(0, len(pool), (batch,), generator=gen)]
    return pairs(picks.tolist())
