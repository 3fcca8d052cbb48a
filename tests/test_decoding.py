"""Decoding strategies: cached == recomputed, beam == exhaustive search on a
tiny vocabulary, sampling repeatable, speculative == target."""
from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats as scistats

from impls.decoding import speculative
from impls.decoding import generate
from impls.decoding.sampling import filtered_probs
from impls.decoding.session import Session
from tests.lm_doubles import ToyAttentionLM, ToyRNNLM


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield

MODELS = {"attention": lambda **kw: ToyAttentionLM(**kw), "rnn": lambda **kw: ToyRNNLM(**kw)}
CACHES = {"attention": ["grow", "static"], "rnn": ["grow"]}
MODEL_CACHE = [(m, c) for m in MODELS for c in CACHES[m]]


def prompt(batch: int = 2, length: int = 5, vocab: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch,cache", MODEL_CACHE)
def test_cached_step_logits_match_full_recompute(arch, cache):
    model = MODELS[arch]()
    tokens = prompt(2, 12)
    session = Session(model, 2, 12, cache)
    logits = [session.prefill(tokens[:, :5])]
    logits += [session.step(tokens[:, t])[:, None] for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(logits, 1), model(tokens), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,cache", MODEL_CACHE)
def test_cached_greedy_equals_no_cache_greedy(arch, cache):
    model = MODELS[arch]()
    with_cache = generate(model, prompt(), 10, cache=cache)
    without = generate(model, prompt(), 10, cache="none")
    assert torch.equal(with_cache.tokens, without.tokens)
    assert with_cache.stats.cache_bytes[-1] > 0 and without.stats.cache_bytes[-1] == 0


def test_static_cache_equals_growing_cache():
    model = ToyAttentionLM()
    grow, static = (generate(model, prompt(3, 4), 12, cache=c) for c in ("grow", "static"))
    assert torch.equal(grow.tokens, static.tokens)
    # the growing cache grows with length; the static one is allocated up front
    assert grow.stats.cache_bytes[-1] > grow.stats.cache_bytes[0]
    assert static.stats.cache_bytes[0] == static.stats.cache_bytes[-1]


def test_stats_have_one_latency_per_token_after_the_first():
    gen = generate(ToyAttentionLM(), prompt(), 7)
    assert gen.tokens.shape == (2, 7)
    assert len(gen.stats.per_token_latency_s) == 6 and gen.stats.time_to_first_token_s > 0
    assert gen.stats.cache_lengths == list(range(5, 12))
    assert gen.stats.tokens_per_s > 0


def test_greedy_stops_rows_at_eos_and_pads_with_it():
    model = ToyAttentionLM()
    free = generate(model, prompt(), 10).tokens
    eos = int(free[0, 3])  # row 0 emits this token at step 3 (or earlier)
    out = generate(model, prompt(), 10, eos_id=eos).tokens
    first = int((free[0] == eos).nonzero()[0])
    assert torch.equal(out[0, :first + 1], free[0, :first + 1])
    assert (out[0, first:] == eos).all()


@pytest.mark.parametrize("arch,cache", MODEL_CACHE)
def test_beam_width_one_equals_greedy(arch, cache):
    model = MODELS[arch]()
    greedy = generate(model, prompt(), 8, cache=cache)
    beam = generate(model, prompt(), 8, strategy="beam", width=1, cache=cache)
    assert torch.equal(greedy.tokens, beam.tokens)


def _brute_force_best(model, prompt_row, length, alpha, eos_id):
    """Best continuation by scoring every sequence over the vocabulary in one batch."""
    seqs = torch.tensor(list(itertools.product(range(model.vocab), repeat=length)))  # (V^L, L)
    if eos_id is not None:  # everything after the first EOS is EOS; duplicates then tie
        after_eos = (seqs == eos_id).long().cumsum(1) - (seqs == eos_id).long() > 0
        seqs = seqs.masked_fill(after_eos, eos_id).unique(dim=0)
        ends = torch.where((seqs == eos_id).any(1), (seqs == eos_id).float().argmax(1) + 1, length)
    else:
        ends = torch.full((len(seqs),), length)
    full = torch.cat([prompt_row.expand(len(seqs), -1), seqs], 1)
    logp = model(full)[:, len(prompt_row) - 1:-1].log_softmax(-1).gather(-1, seqs[..., None])[..., 0]
    counted = torch.arange(length)[None] < ends[:, None]
    scores = (logp * counted).sum(1) / ends.float() ** alpha
    return seqs[scores.argmax()], float(scores.max())


@pytest.mark.parametrize("alpha,eos_id", [(0.0, None), (0.0, 0), (1.0, 0)])
def test_wide_beam_search_finds_the_exhaustive_best(alpha, eos_id):
    model = ToyAttentionLM(vocab=4, sharpness=1.0, seed=3)
    p = prompt(2, 3, vocab=4, seed=1)
    length = 4
    beam = generate(model, p, length, strategy="beam", width=4 ** (length - 1), alpha=alpha, eos_id=eos_id)
    for row in range(2):
        best, score = _brute_force_best(model, p[row], length, alpha, eos_id)
        assert torch.equal(beam.tokens[row], best), (row, beam.tokens[row], best, score)


def test_narrow_beam_scores_no_better_than_wide():
    from impls.decoding import beam
    from impls.decoding.stats import Recorder
    model = ToyAttentionLM(vocab=5, sharpness=1.0, seed=4)
    p = prompt(3, 3, vocab=5, seed=2)
    scores = [beam.search(model, p, 4, Recorder(3), "grow", None, w, 0.0, None)[1][:, 0] for w in (1, 2, 125)]
    assert (scores[0] <= scores[1] + 1e-6).all() and (scores[1] <= scores[2] + 1e-6).all()
    assert (scores[0] < scores[2] - 1e-6).any()  # greedy is beaten somewhere, or the test is vacuous


@pytest.mark.parametrize("arch", MODELS)
def test_sampling_top_k_one_equals_greedy(arch):
    model = MODELS[arch]()
    greedy = generate(model, prompt(), 10)
    sampled = generate(model, prompt(), 10, strategy="sampling", top_k=1, temperature=1.3, seed=5)
    assert torch.equal(greedy.tokens, sampled.tokens)


def test_seeded_sampling_repeats_and_seeds_differ():
    model = ToyAttentionLM(sharpness=0.5)
    runs = [generate(model, prompt(), 16, strategy="sampling", seed=s, top_p=0.9).tokens for s in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.1]])
    kept = filtered_probs(probs.log(), top_p=0.7) > 0
    assert kept.tolist() == [[True, True, False, False]]
    kept = filtered_probs(probs.log(), top_p=0.75) > 0  # 0.5 + 0.25 reaches 0.75 exactly
    assert kept.tolist() == [[True, True, False, False]]
    kept = filtered_probs(probs.log(), top_p=0.76) > 0
    assert kept.tolist() == [[True, True, True, False]]


DRAFTS = {"random attention": lambda: ToyAttentionLM(seed=9), "rnn": lambda: ToyRNNLM(seed=2),
          "same as target": lambda: ToyAttentionLM(seed=0)}


@pytest.mark.parametrize("draft", DRAFTS)
@pytest.mark.parametrize("target_arch,cache", MODEL_CACHE)
def test_speculative_greedy_equals_target_greedy(draft, target_arch, cache):
    target = MODELS[target_arch]()
    p = prompt(3, 4, seed=3)  # batched: rows accept different numbers of drafts
    for rows in (1, 3):
        expected = generate(target, p[:rows], 15, cache=cache).tokens
        for k in (1, 3):
            spec = generate(target, p[:rows], 15, strategy="speculative", draft=DRAFTS[draft](), k=k, cache=cache)
            assert torch.equal(spec.tokens, expected), (rows, k, spec.tokens, expected)
            assert 0 <= spec.stats.extra["acceptance_rate"] <= 1
            assert spec.stats.extra["mean_accepted_length"] <= k * spec.stats.extra["acceptance_rate"] + 1e-9


def test_speculative_with_the_target_as_draft_accepts_everything():
    target = ToyAttentionLM()
    spec = generate(target, prompt(1), 12, strategy="speculative", draft=ToyAttentionLM(), k=3,
                    temperature=1.0, seed=1)
    assert spec.stats.extra["acceptance_rate"] == 1.0 and spec.stats.extra["mean_accepted_length"] == 3.0


def _chisquare_p(observed: torch.Tensor, probs: torch.Tensor) -> float:
    """p-value that integer counts `observed` (V,) were drawn from `probs` (V,)."""
    expected = probs.double() / probs.double().sum() * float(observed.sum())
    return float(scistats.chisquare(observed.double().numpy(), expected.numpy()).pvalue)


def test_speculative_rule_preserves_the_target_distribution():
    """Over many independent rounds, the first emitted token is distributed as
    the target's p_1, whatever the draft q (chi-square test)."""
    g = torch.Generator().manual_seed(0)
    V, k, R = 6, 3, 60_000
    p = torch.softmax(torch.randn(k + 1, V, generator=g) * 1.5, -1).expand(R, -1, -1)
    q = torch.softmax(torch.randn(k, V, generator=g) * 1.5, -1).expand(R, -1, -1)
    drafts = torch.multinomial(q.reshape(-1, V), 1, generator=g).view(R, k)
    n, nxt = speculative.accept(p, q, drafts, g)
    first = torch.where(n > 0, drafts[:, 0], nxt)
    observed = torch.bincount(first, minlength=V)
    assert _chisquare_p(observed, p[0, 0]) > 1e-3
    # the draft differs from the target, so the check is not trivially met by q
    assert _chisquare_p(observed, q[0, 0]) < 1e-6
    # second token given that the first draft was accepted: p_2 again
    second = torch.where(n > 1, drafts[:, 1], nxt)[n >= 1]
    assert _chisquare_p(torch.bincount(second, minlength=V), p[0, 1]) > 1e-3


def test_batched_speculative_sampling_keeps_each_rows_target_distribution():
    """Every row of a batch is an independent sample: the joint law of a row's first two
    tokens matches the target's, although each round commits only as many drafts as the
    batch's least lucky row accepted (chi-square over all V^2 pairs)."""
    V = 4
    target, draft = ToyAttentionLM(vocab=V, sharpness=1.0), ToyRNNLM(vocab=V, seed=4, sharpness=2.0)
    p = prompt(1, 3, vocab=V)
    continuations = torch.cat([p.expand(V, -1), torch.arange(V)[:, None]], 1)
    first = target(p)[0, -1].softmax(-1)
    joint = (first[:, None] * target(continuations)[:, -1].softmax(-1)).flatten()  # P(y1, y2)
    draft_first = draft(p)[0, -1].softmax(-1)
    draft_joint = (draft_first[:, None] * draft(continuations)[:, -1].softmax(-1)).flatten()
    pairs = torch.cat([generate(target, p.expand(48, -1), 2, strategy="speculative", draft=draft, k=2,
                                temperature=1.0, seed=s).tokens for s in range(16)])
    observed = torch.bincount(pairs[:, 0] * V + pairs[:, 1], minlength=V * V)
    assert _chisquare_p(observed, joint) > 1e-3
    assert _chisquare_p(observed, draft_joint) < 1e-6  # the draft alone would be told apart


@pytest.mark.slow
def test_speculative_sampling_matches_target_sampling_in_distribution():
    """End to end on a tiny model: the first generated token's frequencies over
    many seeds match the target's softmax."""
    target, draft = ToyAttentionLM(vocab=5, sharpness=1.0), ToyRNNLM(vocab=5, seed=4, sharpness=1.0)
    p = prompt(1, 3, vocab=5)
    expected = target(p)[0, -1].softmax(-1)
    firsts = [int(generate(target, p, 1, strategy="speculative", draft=draft, k=2, temperature=1.0,
                           seed=s).tokens[0, 0]) for s in range(300)]
    assert _chisquare_p(torch.bincount(torch.tensor(firsts), minlength=5), expected) > 1e-3
