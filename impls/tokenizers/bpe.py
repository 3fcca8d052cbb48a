"""Byte-level BPE from the `tokenizers` library (Sennrich et al. 2016; GPT-2's byte-level variant).

Every text encodes (256 byte symbols, no unknown token); merges are learned from
the text it is fitted on, line by line, up to `vocab_size` ids.
"""
from __future__ import annotations

import torch

from impls.registry import register
from impls.requirements import module

MIN_VOCAB = 257  # the 256 byte symbols, plus at least one merge


@register("tokenizer", "bpe", precisions=("fp32",), requires=(module("tokenizers"),))
class BPETokenizer:
    """Byte-level BPE (the `tokenizers` library), trained to `vocab_size` ids."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    @classmethod
    def fit(cls, text: str, vocab_size: int) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < MIN_VOCAB:
            raise ValueError(f"a byte-level BPE needs a vocabulary of at least {MIN_VOCAB}, got {vocab_size}")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def save(self, path: str) -> None:
        """Write tokenizer.json (the format transformers' fast tokenizers and Tokenizer.from_file read)."""
        self._tokenizer.save(path)

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        encoding = self._tokenizer.encode(text)
        # a character split over several byte tokens ends at its last one: offsets are characters
        ends = torch.tensor([end for _, end in encoding.offsets], dtype=torch.long)
        return torch.tensor(encoding.ids, dtype=torch.long), ends

    def decode(self, ids: torch.Tensor) -> str:
        return self._tokenizer.decode(ids.tolist())
