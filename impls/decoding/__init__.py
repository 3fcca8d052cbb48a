"""Decoding: greedy, beam, sampling and speculative generation over any LanguageModel.

    from impls.decoding import generate
    gen = generate(model, prompt_ids, max_new_tokens, strategy="greedy", **options)
"""
from __future__ import annotations

from impls.decoding.loop import Generation, generate

__all__ = ["Generation", "generate"]
