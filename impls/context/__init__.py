"""Context strategies for long dialogues (family "context").

An impl is a class built with its params; `observe(turn)` is told each turn as
it happens, and `context(question)` returns the text units (turns, or summary
lines) a model would be prompted with before `question`, oldest first:

  full.py       every turn (the baseline that grows without bound)
  window.py     the last `window` turns
  summary.py    the last `window` turns, and each older turn cut to its rarest words
  retrieval.py  the last `window` turns, and the `top_k` older turns most similar to
                the question (hashed bag-of-words vectors in a faiss inner-product index)
"""
