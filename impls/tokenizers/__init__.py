"""Tokenizers (family "tokenizer"): text to ids, each id with the character offset where it ends.

An impl is a class with `fit(text, vocab_size) -> tokenizer` (learn from `text`;
`vocab_size` is the target size where the tokenizer has one), `vocab_size` and
`encode(text) -> (ids, ends)`: (N,) long ids and (N,) long end offsets, so a
loss over tokens converts to bits per character over the characters they cover.
"""
