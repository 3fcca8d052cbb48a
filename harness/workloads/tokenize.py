"""The `tokenize` workload: encode a block of validation text with a tokenizer (family "tokenizer").

The tokenizer is fitted first, untimed (BPE merges on the training split, to
`vocab_size` ids; characters on the corpus's alphabet). The timed call encodes
`text_chars` characters of the validation split; the record gives tokens and
chars per call (so tokens_per_s and chars_per_s), chars_per_token and the
resident memory of the call. The check decodes the ids back: a tokenizer that
does not give back the text it was given is `wrong`.
"""
from __future__ import annotations

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.quality import corpus, tokenization
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from impls.registry import Impl


class TokenizeParams(CommonParams):
    vocab_size: int = Field(1024, ge=1)  # BPE's target vocabulary; characters take the corpus's alphabet
    text_chars: int = Field(32768, ge=1)  # characters encoded per call, from the validation split
    corpus: str | None = None  # a UTF-8 text file; default: Python's pydoc topics


@register_workload
class Tokenize(Workload):
    name = "tokenize"
    families = {"tokenizer": TokenizeParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: TokenizeParams = case.typed
        text = corpus.load(p.corpus)
        train_text, valid_text = text.decode(text.train), text.decode(text.valid)
        if len(valid_text) < p.text_chars:
            raise Skip(f"the validation split has {len(valid_text)} characters, fewer than text_chars={p.text_chars}")
        try:
            tokenizer = tokenization.fit(impl.name, p.vocab_size, train_text + valid_text, train_text)
        except ValueError as err:  # a vocabulary the tokenizer cannot have
            raise Skip(str(err)) from None
        block = valid_text[: p.text_chars]
        ids, _ = tokenizer.encode(block)
        return Prepared(run=lambda: tokenizer.encode(block), check=lambda: _round_trip(tokenizer, block, ids),
                        work={"tokens": float(len(ids)), "chars": float(len(block))},
                        stats=lambda: {"chars_per_token": len(block) / len(ids),
                                       "vocab_size": float(tokenizer.vocab_size)})


def _round_trip(tokenizer, block: str, ids: torch.Tensor) -> dict[str, float]:
    """Whether decoding the ids gives the text back (rel_err: the fraction of characters off)."""
    back = tokenizer.decode(ids)
    wrong = sum(a != b for a, b in zip(back, block)) + abs(len(back) - len(block))
    return {"rel_err": wrong / len(block), "tolerance": 0.0, "within_tolerance": float(wrong == 0)}
