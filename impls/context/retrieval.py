"""A sliding window, and retrieval of the older turns most similar to the question.

Each turn leaving the window is embedded as a hashed bag of words (`dim` buckets,
L2-normalised, so an inner product is a cosine) and added to a faiss flat
inner-product index; a question retrieves its `top_k` nearest older turns, which
are prompted in their original order before the window.
"""
from __future__ import annotations

import zlib
from collections import deque

import numpy as np

from impls.registry import register
from impls.requirements import module


def embed(text: str, dim: int) -> np.ndarray:
    """(dim,) float32: word counts hashed to buckets (crc32, stable across runs), unit length."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in text.lower().split():
        vector[zlib.crc32(word.encode()) % dim] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


@register("context", "retrieval", precisions=("fp32",), requires=(module("faiss", "faiss-cpu"),),
          params={"window": 8, "top_k": 4, "dim": 1024})
class RetrievalContext:
    """The last `window` turns, and the `top_k` older turns nearest the question (faiss)."""

    def __init__(self, window: int = 8, top_k: int = 4, dim: int = 1024):
        import faiss

        if window < 1 or top_k < 1 or dim < 1:
            raise ValueError(f"window, top_k and dim must be at least 1, got {window}, {top_k}, {dim}")
        self.window, self.top_k, self.dim = window, top_k, dim
        self.recent: deque[str] = deque()
        self.older: list[str] = []
        self.index = faiss.IndexFlatIP(dim)

    def observe(self, turn: str) -> None:
        self.recent.append(turn)
        if len(self.recent) > self.window:
            leaving = self.recent.popleft()
            self.older.append(leaving)
            self.index.add(embed(leaving, self.dim)[None])

    def context(self, question: str) -> list[str]:
        found: list[int] = []
        if self.older:
            _, ids = self.index.search(embed(question, self.dim)[None], min(self.top_k, len(self.older)))
            found = sorted(int(i) for i in ids[0] if i >= 0)
        return [self.older[i] for i in found] + list(self.recent)
