"""Decoding: greedy, beam, sampling and speculative generation over any LanguageModel."""
