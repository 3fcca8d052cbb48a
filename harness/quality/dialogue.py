"""A synthetic long dialogue: facts stated early, questions about them later.

The user states facts ("my city is oslo"), sometimes changes one later, and
talks filler in between, some of it mentioning the same attributes without a
value ("the city was busy"), so a strategy that keeps words but not the pairing
can be led astray. Questions come in the second half ("what is my city ?"); the
right answer is the latest value stated before the question.

`answer(units, attribute)` is the reader: it needs no model. In the latest text
unit (turn or summary line) where the attribute is followed by one of its
values, that value; None when the context holds none. With every turn kept it is
always right (tests/test_dialogue.py), so a strategy's accuracy measures only
what its context kept.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

VALUES = {
    "city": ["oslo", "lima", "cairo", "perth", "quito", "hanoi", "dakar", "riga"],
    "colour": ["teal", "amber", "violet", "ochre", "crimson", "indigo", "olive", "coral"],
    "pet": ["ferret", "parrot", "gecko", "rabbit", "hamster", "tortoise", "beagle", "canary"],
    "drink": ["mate", "kefir", "cocoa", "chai", "lassi", "cider", "espresso", "horchata"],
    "sport": ["judo", "rowing", "fencing", "curling", "polo", "squash", "archery", "karate"],
    "car": ["volvo", "skoda", "fiat", "saab", "tesla", "lada", "mazda", "citroen"],
    "fruit": ["lychee", "quince", "guava", "papaya", "durian", "kiwi", "mango", "fig"],
    "job": ["baker", "pilot", "welder", "nurse", "chemist", "plumber", "tailor", "surveyor"],
}
FILLER = ("so anyway i think that the weather was nice and we went out for a walk then came back "
          "home it was a long day at work but fine really you know how it is with the usual things "
          "people say about time and plans maybe later we could talk again about nothing much").split()


@dataclass(frozen=True)
class Turn:
    text: str
    asks: str | None = None  # the attribute a question turn asks about
    answer: str | None = None  # its right answer: the latest value stated before


def long_dialogue(turns: int, facts: int, updates: int, question_every: int, filler_words: int,
                  seed: int) -> list[Turn]:
    """`turns` user turns: `facts` attributes stated in the first quarter, `updates` of
    them restated with a new value before the middle, a question every `question_every`
    turns in the second half, filler elsewhere."""
    if not 1 <= facts <= len(VALUES):
        raise ValueError(f"facts must be 1..{len(VALUES)}, got {facts}")
    if turns < 8 or question_every < 1:
        raise ValueError(f"need turns >= 8 and question_every >= 1, got {turns}, {question_every}")
    rng = random.Random(seed)
    attributes = rng.sample(sorted(VALUES), facts)
    statements = {t: a for t, a in zip(rng.sample(range(turns // 4), facts), attributes)}
    for t, a in zip(rng.sample(range(turns // 4, turns // 2), min(updates, facts)), rng.sample(attributes, facts)):
        statements[t] = a
    current: dict[str, str] = {}
    dialogue = []
    for t in range(turns):
        if t in statements:
            attribute = statements[t]
            current[attribute] = rng.choice([v for v in VALUES[attribute] if v != current.get(attribute)])
            dialogue.append(Turn(f"{_filler(rng, filler_words // 2)} by the way my {attribute} is "
                                 f"{current[attribute]} now {_filler(rng, filler_words // 2)}"))
        elif t >= turns // 2 and (t - turns // 2) % question_every == 0:
            attribute = rng.choice(attributes)
            dialogue.append(Turn(f"what is my {attribute} ?", asks=attribute, answer=current[attribute]))
        else:
            distractor = f" the {rng.choice(attributes)} was on my mind" if rng.random() < 0.3 else ""
            dialogue.append(Turn(_filler(rng, filler_words) + distractor))
    return dialogue


def _filler(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(words))


def answer(units: list[str], attribute: str) -> str | None:
    """The value after `attribute` in the latest unit that pairs them; None if none does."""
    values = set(VALUES[attribute])
    for unit in reversed(units):
        words = unit.split()
        for i, word in enumerate(words):
            if word == attribute:
                following = next((w for w in words[i + 1:] if w in values), None)
                if following:
                    return following
    return None
