"""Decode-loop overhead: `generate` greedy against a bare loop of `model.step` calls on the
same model, timed in alternation in one run and compared by their fastest samples, so only
their ratio is checked, and measured again before it fails (issue 6's target is >= 0.9 of
the bare loop's tokens/s; CI asserts a looser bound because two shared cores add noise to
any ratio). `scripts/decode_loop_overhead.py` prints the figure."""
from __future__ import annotations

import pytest

from harness import regression
from impls.decoding.overhead import decode_loop_overhead


@pytest.mark.parametrize("model", ["transformer", "gru"])
def test_generate_keeps_most_of_the_bare_step_loop_throughput(model):
    ratio = regression.remeasured(
        lambda: decode_loop_overhead(model, new_tokens=64, rounds=3, timing=regression.interleaved_fastest),
        lambda ratio: ratio >= 0.8)
    assert ratio >= 0.8, f"{model}: generate reaches {ratio:.2f} of the bare loop's tokens/s"
