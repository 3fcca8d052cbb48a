"""The corpus as token ids, through a registered tokenizer (impls/tokenizers).

A tokenizer is named `char` (one id per character of the corpus's alphabet) or
`bpe-<V>` (byte-level BPE with V ids, its merges learned from the training split
only, so validation text never shapes them). Each split keeps, beside its ids,
the character offset where each token ends, so a loss over tokens converts to
bits per character over exactly the characters those tokens cover: the measure
that compares tokenizers fairly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from harness.quality import corpus
from impls import registry

TOKENIZER_PATTERN = r"^(char|bpe-[0-9]+)$"


@dataclass(frozen=True)
class Split:
    ids: torch.Tensor  # (N,) long
    ends: torch.Tensor  # (N,) long: the character offset where token i ends

    def chars_between(self, first: int, last: int) -> int:
        """Characters covered by tokens first..last (inclusive)."""
        start = int(self.ends[first - 1]) if first > 0 else 0
        return int(self.ends[last]) - start


@dataclass(frozen=True)
class TokenizedCorpus:
    tokenizer: str
    vocab_size: int
    train: Split
    valid: Split

    @property
    def chars_per_token(self) -> float:
        """Validation characters per token (1.0 for characters)."""
        return int(self.valid.ends[-1]) / len(self.valid.ids)


def parse(name: str) -> tuple[str, int | None]:
    """`char` -> ("char", None); `bpe-<V>` -> ("bpe", V); ValueError for anything else."""
    match = re.match(TOKENIZER_PATTERN, name)
    if not match:
        raise ValueError(f"unknown tokenizer '{name}'; valid: char, bpe-<vocabulary size>")
    return ("char", None) if name == "char" else ("bpe", int(name.removeprefix("bpe-")))


def fit(kind: str, vocab_size: int | None, text: str, train_text: str):
    """Tokenizer impl `kind` fitted: a character alphabet on the whole `text` (an alphabet
    learns nothing to leak, and validation may hold characters training lacks), BPE merges
    on `train_text` only."""
    return registry.get("tokenizer", kind).fn.fit(text if kind == "char" else train_text, vocab_size)


def load(name: str = "char", path: str | None = None) -> TokenizedCorpus:
    """The corpus at `path` (default: pydoc topics), split as corpus.load splits it, tokenized."""
    text = corpus.load(path)
    train_text, valid_text = text.decode(text.train), text.decode(text.valid)
    tokenizer = fit(*parse(name), train_text + valid_text, train_text)
    return TokenizedCorpus(name, tokenizer.vocab_size, Split(*tokenizer.encode(train_text)),
                           Split(*tokenizer.encode(valid_text)))


def check_vocab(name: str) -> None:
    """ValueError when `name` asks BPE for fewer ids than its byte alphabet."""
    from impls.tokenizers.bpe import MIN_VOCAB

    kind, vocab = parse(name)
    if kind == "bpe" and vocab < MIN_VOCAB:
        raise ValueError(f"tokenizer {name}: a byte-level BPE needs a vocabulary of at least {MIN_VOCAB}")
