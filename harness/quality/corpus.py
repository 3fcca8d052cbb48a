"""A character-level corpus with a fixed train/validation split.

The default text is the Python standard library's documentation topics
(`pydoc_data.topics`, ~460k characters, present in every CPython install), so
the task needs no download. Any UTF-8 text file can replace it (`path`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

VALIDATION_FRACTION = 0.1  # the last 10% of the text; a fixed split, not a random one


def default_text() -> str:
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


@dataclass(frozen=True)
class CharCorpus:
    """Characters mapped to ids 0..V-1 by sorted order; `train`/`valid` are 1-D long tensors."""

    chars: str
    train: torch.Tensor
    valid: torch.Tensor

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        index = {c: i for i, c in enumerate(self.chars)}
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.chars[i] for i in ids.tolist())


def load(path: str | Path | None = None, max_chars: int | None = None) -> CharCorpus:
    """The corpus from `path` (default: pydoc topics), cut to `max_chars` characters if given."""
    text = Path(path).read_text(encoding="utf-8") if path else default_text()
    if max_chars:
        text = text[:max_chars]
    if len(text) < 100:
        raise ValueError(f"corpus {path or 'pydoc_data.topics'} has {len(text)} characters; need at least 100")
    chars = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(len(ids) * (1 - VALIDATION_FRACTION))
    return CharCorpus(chars=chars, train=ids[:split], valid=ids[split:])


def random_windows(ids: torch.Tensor, batch: int, seq_len: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows: inputs (B, T) and next-character targets (B, T)."""
    if len(ids) <= seq_len + 1:
        raise ValueError(f"text of {len(ids)} characters is too short for windows of {seq_len}")
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch,), generator=gen)
    rows = torch.stack([ids[s:s + seq_len + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


def eval_windows(ids: torch.Tensor, seq_len: int, max_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive non-overlapping windows from the start: inputs and targets (W, T), the same every call."""
    count = min(max_windows, (len(ids) - 1) // seq_len)
    if count < 1:
        raise ValueError(f"validation text of {len(ids)} characters is shorter than seq_len={seq_len}")
    rows = ids[: count * seq_len + 1]
    inputs = rows[:-1].view(count, seq_len)
    targets = rows[1:].view(count, seq_len)
    return inputs, targets
