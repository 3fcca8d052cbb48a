"""The `dialogue` workload: a context strategy (family "context") over a synthetic long dialogue.

One call replays the whole dialogue (harness.quality.dialogue): every turn is
observed by a fresh strategy, and at each question its context plus the
question is the prompt, which a small decoder (`lm` preset at `d_model`, random
weights: its cost, not its answers) prefills, so the time and memory of a call
are what the strategy's prompts cost a model. The answers come from the task's
reader over the same context, so accuracy measures what the strategy kept.
Record: accuracy, prompt_tokens_per_turn (mean prompt length in words at a
question; words are the tokens here), max_prompt_tokens, questions, turns; tokens
per call is the sum of prompt tokens, so tokens_per_s is prompt tokens prefilled
per second, and median_ms / turns the cost of a turn.
"""
from __future__ import annotations

import zlib
from typing import Any

import torch
from pydantic import Field, field_validator

from harness.case import Case
from harness.quality import dialogue
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from impls import models, registry
from impls.registry import Impl

LM_VOCAB = 4096  # words hashed into the cost model's vocabulary


class DialogueParams(CommonParams):
    turns: int = Field(120, ge=8)
    facts: int = Field(8, ge=1, le=len(dialogue.VALUES))
    updates: int = Field(4, ge=0)
    question_every: int = Field(4, ge=1)
    filler_words: int = Field(16, ge=2)
    lm: str = "transformer"  # the preset whose prefill prices the prompts
    d_model: int = Field(64, ge=8)
    n_layers: int = Field(2, ge=1)

    @field_validator("lm")
    @classmethod
    def _known_preset(cls, name: str) -> str:
        try:
            impl = registry.get("model", name)
        except registry.UnknownImpl as err:
            raise ValueError(str(err)) from None
        if impl.fixed_size:
            raise ValueError(f"{name} needs a checkpoint; use a preset built from d_model")
        return name


@register_workload
class Dialogue(Workload):
    name = "dialogue"
    families = {"context": DialogueParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: DialogueParams = case.typed
        turns = dialogue.long_dialogue(p.turns, p.facts, p.updates, p.question_every, p.filler_words, p.seed)
        kwargs = {**impl.params, **case.impl_kwargs()}
        prompts = [_words(units, turn) for units, turn in _replay(impl, kwargs, turns) if turn.asks]
        torch.manual_seed(p.seed)
        lm = models.config(p.lm, "model", vocab_size=LM_VOCAB, d_model=p.d_model, n_layers=p.n_layers,
                           max_seq_len=max(len(w) for w in prompts) + 1).build().to(case.device).eval()

        def run() -> list[str | None]:
            answers = []
            with torch.no_grad():
                for units, turn in _replay(impl, kwargs, turns):
                    if turn.asks:
                        lm(_ids(_words(units, turn), case.device))
                        answers.append(dialogue.answer(units, turn.asks))
            return answers

        work = {"tokens": float(sum(len(w) for w in prompts))}
        return Prepared(run=run, work=work, stats=lambda: _quality(run(), turns, prompts))


def _replay(impl: Impl, kwargs: dict[str, Any], turns: list[dialogue.Turn]):
    """(context before the turn, the turn) for every turn, through a fresh strategy."""
    strategy = impl.fn(**kwargs)
    for turn in turns:
        units = strategy.context(turn.text) if turn.asks else []
        yield units, turn
        strategy.observe(turn.text)


def _words(units: list[str], turn: dialogue.Turn) -> list[str]:
    return " ".join([*units, turn.text]).split()


def _ids(words: list[str], device: str) -> torch.Tensor:
    return torch.tensor([[zlib.crc32(w.encode()) % LM_VOCAB for w in words]], device=device)


def _quality(answers: list[str | None], turns: list[dialogue.Turn], prompts: list[list[str]]) -> dict[str, float]:
    questions = [t for t in turns if t.asks]
    right = sum(a == t.answer for a, t in zip(answers, questions))
    return {"accuracy": right / len(questions), "questions": float(len(questions)), "turns": float(len(turns)),
            "prompt_tokens_per_turn": sum(len(w) for w in prompts) / len(prompts),
            "max_prompt_tokens": float(max(len(w) for w in prompts))}
