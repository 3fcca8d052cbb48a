"""One id per character, over the alphabet of the text it was fitted on."""
from __future__ import annotations

import torch

from impls.registry import register


@register("tokenizer", "char", precisions=("fp32",))
class CharTokenizer:
    """Characters by sorted order: the corpus's own alphabet (vocab_size is ignored)."""

    def __init__(self, chars: str):
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, text: str, vocab_size: int | None = None) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        unknown = set(text) - set(self._index)
        if unknown:
            raise ValueError(f"characters outside the fitted alphabet: {''.join(sorted(unknown))[:20]!r}")
        ids = torch.tensor([self._index[c] for c in text], dtype=torch.long)
        return ids, torch.arange(1, len(text) + 1)

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.chars[i] for i in ids.tolist())
