"""Decoding the real LanguageModel with every mixer: cached decoding equals full
recompute, beam width 1 equals greedy, speculative equals the target's greedy."""
from __future__ import annotations

import pytest
import torch

from impls.decoding import generate
from impls.decoding.session import Session
from impls.models.lm import LanguageModel, LMConfig

VOCAB = 16
# (mixer, cache kinds it has); ffn="none" keeps the models tiny and independent of the ffn family
MIXERS = {"attention": ("grow", "static", "window"), "gru_torch": ("grow",), "lstm": ("grow",),
          "mamba": ("grow",), "s4d": ("grow",)}
CASES = [(m, c) for m, caches in MIXERS.items() for c in caches]


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def tiny_lm(mixer: str, d_model: int = 16, n_layers: int = 2, seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    model = LanguageModel(LMConfig(VOCAB, d_model, n_layers, mixer=mixer, ffn="none", max_seq_len=64)).eval()
    for p in model.parameters():  # sharper than the 0.02 init, so greedy paths are not ties
        p.data.normal_(0, 0.5)
    return model


def prompt(batch: int = 2, length: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mixer,cache", CASES)
def test_cached_logits_match_forward(mixer, cache):
    model, tokens = tiny_lm(mixer), prompt(2, 9)
    # a window as long as the sequence keeps every position: same as full attention
    session = Session(model, 2, 9, cache, window=9 if cache == "window" else None)
    logits = [session.prefill(tokens[:, :4])] + [session.step(tokens[:, t])[:, None] for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(logits, 1), model(tokens), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mixer,cache", CASES)
def test_cached_greedy_equals_recompute_and_beam_width_one(mixer, cache):
    model, window = tiny_lm(mixer), 13 if cache == "window" else None
    recomputed = generate(model, prompt(), 8, cache="none").tokens
    assert torch.equal(generate(model, prompt(), 8, cache=cache, window=window).tokens, recomputed)
    assert torch.equal(generate(model, prompt(), 8, strategy="beam", width=1, cache=cache,
                                window=window).tokens, recomputed)


def test_window_cache_bytes_stay_bounded_while_growing_cache_grows():
    model = tiny_lm("attention")
    grow = generate(model, prompt(), 12, cache="grow").stats.cache_bytes
    window = generate(model, prompt(), 12, cache="window", window=4).stats.cache_bytes
    assert grow[-1] > grow[0] and window[-1] == window[0] and window[-1] < grow[-1]


SLOW_SSM = pytest.mark.slow  # the SSMs' per-step snapshots and replays take seconds on a loaded CPU
SPECULATIVE_CASES = [pytest.param(m, c, marks=SLOW_SSM) if m in ("mamba", "s4d") else (m, c) for m, c in CASES]


@pytest.mark.parametrize("mixer,cache", SPECULATIVE_CASES)
def test_speculative_greedy_equals_target_greedy_for_an_unrelated_draft(mixer, cache):
    target, window = tiny_lm(mixer), 4 if cache == "window" else None
    p = prompt(2, 4, seed=2)  # two rows: speculative decoding runs batched
    expected = generate(target, p, 10, cache=cache, window=window).tokens
    for draft in (tiny_lm("gru_torch", 8, 1, seed=5), tiny_lm(mixer, seed=0)):
        spec = generate(target, p, 10, strategy="speculative", draft=draft, k=3, cache=cache, window=window)
        assert torch.equal(spec.tokens, expected)
    assert spec.stats.extra["acceptance_rate"] == 1.0  # the last draft was the target itself


@pytest.mark.parametrize("mixer,cache", [("attention", "grow"), ("attention", "static"), ("mamba", "grow")])
def test_wide_beam_with_reordered_cache_equals_beam_by_recompute(mixer, cache):
    """Beams are reordered through the cache every step; recompute reorders token rows only."""
    model = tiny_lm(mixer)
    cached = generate(model, prompt(), 6, strategy="beam", width=3, alpha=0.5, cache=cache)
    recomputed = generate(model, prompt(), 6, strategy="beam", width=3, alpha=0.5, cache="none")
    assert torch.equal(cached.tokens, recomputed.tokens)
