"""Real text as prompts: the corpus's validation split in the model's own token ids.

A checkpoint whose folder holds tokenizer.json (the `tokenizers` library's format, as
transformers saves a fast tokenizer) has its text tokenized by it; any other model reads
the corpus as characters (harness.quality.corpus), which needs a vocabulary at least as
large as the corpus's character set.
"""
from __future__ import annotations

from pathlib import Path

import torch

from harness.case import Case
from harness.errors import Skip
from harness.quality import corpus


def corpus_ids(case: Case, vocab_size: int) -> torch.Tensor:
    """The validation text as a 1-D long tensor of ids below `vocab_size`."""
    checkpoint = case.impl_kwargs().get("checkpoint")
    tokenizer = Path(checkpoint) / "tokenizer.json" if checkpoint else None
    if tokenizer is not None and tokenizer.is_file():
        return _tokenized(tokenizer, vocab_size)
    text = corpus.load()
    if len(text.chars) > vocab_size:
        raise Skip(f"prompt=corpus reads characters ({len(text.chars)} of them) without a tokenizer.json beside "
                   f"the checkpoint; the model's vocabulary has {vocab_size}")
    return text.valid


def _tokenized(path: Path, vocab_size: int) -> torch.Tensor:
    from tokenizers import Tokenizer

    text = corpus.default_text()
    valid = text[int(len(text) * (1 - corpus.VALIDATION_FRACTION)):]
    ids = torch.tensor(Tokenizer.from_file(str(path)).encode(valid).ids, dtype=torch.long)
    if len(ids) and int(ids.max()) >= vocab_size:
        raise ValueError(f"{path} gives token id {int(ids.max())}; the model's vocabulary has {vocab_size}")
    return ids
