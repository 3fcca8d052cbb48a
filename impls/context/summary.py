"""A sliding window, and a summary of the turns that left it.

The summariser is extractive and needs no model: a turn leaving the window is
cut to its `summary_words` rarest words (by how many earlier turns used each
word), kept in their order. Words a dialogue repeats (filler) go first; names
and values said once stay. Each summary line replaces its turn for good.
"""
from __future__ import annotations

from collections import Counter, deque

from impls.registry import register


@register("context", "summary", precisions=("fp32",), params={"window": 8, "summary_words": 6})
class SummaryContext:
    """The last `window` turns, and each older turn cut to its `summary_words` rarest words."""

    def __init__(self, window: int = 8, summary_words: int = 6):
        if window < 1 or summary_words < 1:
            raise ValueError(f"window and summary_words must be at least 1, got {window}, {summary_words}")
        self.window, self.summary_words = window, summary_words
        self.recent: deque[str] = deque()
        self.summary: list[str] = []
        self.turns_with: Counter[str] = Counter()  # word -> turns that used it

    def observe(self, turn: str) -> None:
        self.turns_with.update(set(turn.split()))
        self.recent.append(turn)
        if len(self.recent) > self.window:
            self.summary.append(self._summarise(self.recent.popleft()))

    def _summarise(self, turn: str) -> str:
        words = turn.split()
        rarest = sorted(range(len(words)), key=lambda i: (self.turns_with[words[i]], i))[: self.summary_words]
        return " ".join(words[i] for i in sorted(rarest))

    def context(self, question: str) -> list[str]:
        return self.summary + list(self.recent)
