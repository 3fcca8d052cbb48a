"""A sliding window: the last `window` turns, the rest forgotten."""
from __future__ import annotations

from collections import deque

from impls.registry import register


@register("context", "window", precisions=("fp32",), params={"window": 8})
class WindowContext:
    """The last `window` turns."""

    def __init__(self, window: int = 8):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.recent: deque[str] = deque(maxlen=window)

    def observe(self, turn: str) -> None:
        self.recent.append(turn)

    def context(self, question: str) -> list[str]:
        return list(self.recent)
