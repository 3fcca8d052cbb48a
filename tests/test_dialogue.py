"""The long-dialogue task, its reader, the context strategies and the dialogue workload."""
from __future__ import annotations

import pytest

from harness.case import Case
from harness.quality import dialogue
from harness.workloads.dialogue import Dialogue
from impls import registry
from impls.context.retrieval import RetrievalContext
from impls.context.summary import SummaryContext
from impls.context.window import WindowContext


def _accuracy(strategy, turns: list[dialogue.Turn]) -> float:
    right = asked = 0
    for turn in turns:
        if turn.asks:
            asked += 1
            right += dialogue.answer(strategy.context(turn.text), turn.asks) == turn.answer
        strategy.observe(turn.text)
    return right / asked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_reader_with_every_turn_kept_answers_every_question(seed):
    turns = dialogue.long_dialogue(80, 6, 3, 3, 12, seed)
    assert sum(t.asks is not None for t in turns) >= 10
    assert _accuracy(registry.get("context", "full").fn(), turns) == 1.0


def test_the_right_answer_is_the_latest_value_stated():
    units = ["my city is oslo now", "the city was busy", "by the way my city is lima now", "the city again"]
    assert dialogue.answer(units, "city") == "lima"
    assert dialogue.answer(units[:2], "city") == "oslo"
    assert dialogue.answer(["the city was busy"], "city") is None


def test_updates_change_the_answer_of_later_questions():
    turns = dialogue.long_dialogue(200, 8, 8, 2, 8, seed=3)
    stated: dict[str, list[str]] = {}
    for turn in turns:
        for attribute, values in dialogue.VALUES.items():
            words = turn.text.split()
            if f"my {attribute} is" in turn.text:
                stated.setdefault(attribute, []).append(next(w for w in words if w in values))
        if turn.asks:
            assert turn.answer == stated[turn.asks][-1]
    assert any(len(v) > 1 for v in stated.values())


def test_a_window_as_long_as_the_dialogue_is_the_full_context_and_a_short_one_forgets():
    turns = dialogue.long_dialogue(64, 6, 2, 4, 10, seed=4)
    assert _accuracy(WindowContext(window=64), turns) == 1.0
    assert _accuracy(WindowContext(window=2), turns) < 0.5


def test_summary_keeps_the_rarest_words_of_turns_that_left_the_window_in_order():
    summary = SummaryContext(window=1, summary_words=2)
    for turn in ["a a b c", "a c d", "a b b"]:
        summary.observe(turn)
    # turn 1 left when turn 2 came (turns using a: 2, b: 1, c: 2): b, then the first a;
    # turn 2 left when turn 3 came (a: 3, c: 2, d: 1): d, then c; each kept in its order
    assert summary.context("?") == ["a b", "c d", "a b b"]


def test_retrieval_finds_the_older_turn_that_shares_the_question_words():
    retrieval = RetrievalContext(window=1, top_k=1, dim=256)
    for turn in ["we went out for a walk", "by the way my pet is gecko now", "it was a long day", "fine"]:
        retrieval.observe(turn)
    assert retrieval.context("what is my pet ?") == ["by the way my pet is gecko now", "fine"]


@pytest.mark.parametrize("strategy", [WindowContext, SummaryContext])
def test_strategies_refuse_an_empty_window(strategy):
    with pytest.raises(ValueError, match="at least 1"):
        strategy(window=0)


@pytest.mark.parametrize("impl", ["full", "window", "summary", "retrieval"])
def test_dialogue_workload_counts_the_prompts_it_prefills(impl):
    params = {"turns": 40, "facts": 4, "updates": 2, "question_every": 5, "filler_words": 8, "d_model": 16,
              "n_layers": 1}
    case = Case(suite="t", workload="dialogue", family="context", impl=impl, label=impl, params=params,
                impl_params=(), axes=(), device="cpu")
    prepared = Dialogue().prepare(case, registry.get("context", impl))
    stats = prepared.stats()
    assert stats["questions"] == 4 and stats["turns"] == 40
    assert prepared.work["tokens"] == pytest.approx(stats["prompt_tokens_per_turn"] * stats["questions"])
    assert (stats["accuracy"] == 1.0) if impl == "full" else (0.0 <= stats["accuracy"] <= 1.0)
    assert len(prepared.run()) == 4


@pytest.mark.parametrize("lm, message", [("trasformer", "did you mean transformer"), ("pretrained", "checkpoint")])
def test_a_cost_model_that_is_not_a_sized_preset_is_refused(lm, message):
    from pydantic import ValidationError

    from harness.workloads.dialogue import DialogueParams

    with pytest.raises(ValidationError, match=message):
        DialogueParams(lm=lm)
