"""Every turn so far: what a model with unbounded context would see."""
from __future__ import annotations

from impls.registry import register


@register("context", "full", precisions=("fp32",))
class FullContext:
    """Every earlier turn, in order."""

    def __init__(self):
        self.turns: list[str] = []

    def observe(self, turn: str) -> None:
        self.turns.append(turn)

    def context(self, question: str) -> list[str]:
        return list(self.turns)
