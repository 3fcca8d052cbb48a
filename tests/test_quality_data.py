"""Quality task data: generators are deterministic under a seed and produce correct tasks."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.quality import corpus, numbers, synthetic
from harness.quality.metrics import bits_per_token, bleu, exact_match, perplexity
from harness.quality.training import mean_nll


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (45, "forty five"),
    (100, "one hundred"), (101, "one hundred one"), (999, "nine hundred ninety nine"),
    (1000, "one thousand"), (1010, "one thousand ten"), (402000, "four hundred two thousand"),
    (700070, "seven hundred thousand seventy"),
    (999999, "nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_number_words_spot_checks(n, words):
    assert numbers.to_words(n) == words


def test_number_words_reject_out_of_range():
    with pytest.raises(ValueError):
        numbers.to_words(1_000_000)


def test_number_targets_round_trip_through_token_ids():
    for n in (0, 19, 123456, 900001):
        ids = numbers.encode_target(n) + [numbers.EOS, numbers.PAD]
        assert numbers.decode_target(ids) == numbers.to_words(n)


def test_number_split_is_seeded_and_disjoint():
    a, b = numbers.split(3, n_test=100, max_value=9999), numbers.split(3, n_test=100, max_value=9999)
    assert torch.equal(a.test, b.test) and torch.equal(a.train, b.train)
    assert not set(a.test.tolist()) & set(a.train.tolist())
    assert len(a.test) + len(a.train) == 10000
    assert not torch.equal(a.test, numbers.split(4, n_test=100, max_value=9999).test)


def test_number_curriculum_sample_respects_max_digits():
    pool = numbers.split(0, n_test=10).train
    batch = numbers.sample(pool, 64, torch.Generator().manual_seed(0), max_digits=2)
    assert all(n < 100 for n in batch.numbers)
    assert batch.src.shape[1] == numbers.MAX_DIGITS  # fixed width, whatever the batch


def _same(a: synthetic.Batch, b: synthetic.Batch) -> bool:
    return all(torch.equal(x, y) for x, y in ((a.inputs, b.inputs), (a.targets, b.targets), (a.mask, b.mask)))


@pytest.mark.parametrize("task", [synthetic.selective_copy, synthetic.mqar])
def test_synthetic_tasks_are_deterministic_under_a_seed(task):
    make = lambda seed: task(4, 64, torch.Generator().manual_seed(seed))
    assert _same(make(1), make(1))
    assert not _same(make(1), make(2))


def test_selective_copy_answer_is_the_scattered_symbols_in_order():
    b = synthetic.selective_copy(8, 40, torch.Generator().manual_seed(0), n_memorize=5, n_symbols=6)
    assert b.inputs.shape == (8, 40) and torch.equal(b.inputs[:, 1:], b.targets[:, :-1])
    context = 40 - 5
    for row in range(8):
        scattered = b.inputs[row, :context]
        symbols = scattered[scattered > 1]  # not noise (0) nor separator (1)
        assert torch.equal(b.targets[row][b.mask[row]], symbols)
        assert b.inputs[row, context] == 1  # separator right before the answer


def test_mqar_answers_are_the_values_paired_with_the_queried_keys():
    b = synthetic.mqar(8, 64, torch.Generator().manual_seed(0), n_pairs=6, n_keys=10, n_values=10)
    for row in range(8):
        seq = torch.cat([b.inputs[row], b.targets[row, -1:]])
        pairs = dict(zip(seq[0:12:2].tolist(), seq[1:12:2].tolist()))
        positions = b.mask[row].nonzero().flatten()
        assert len(positions) == 6
        for t in positions.tolist():
            assert b.targets[row, t].item() == pairs[b.inputs[row, t].item()]


def test_corpus_split_is_fixed_and_windows_are_next_character_targets(tmp_path):
    text = "".join(chr(97 + (i * 7) % 26) for i in range(5000))
    path = tmp_path / "text.txt"
    path.write_text(text)
    c = corpus.load(path)
    assert c.vocab_size == 26 and len(c.train) == 4500 and len(c.valid) == 500
    assert c.decode(c.valid[:10]) == text[4500:4510]
    x, y = corpus.random_windows(c.train, 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 1:], y[:, :-1])
    x2, _ = corpus.random_windows(c.train, 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


class _Uniform(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, tokens):
        return torch.zeros(*tokens.shape, self.vocab) + self.anchor


def test_perplexity_of_a_uniform_model_is_the_vocab_size():
    vocab = 37
    tokens = torch.randint(0, vocab, (5, 20), generator=torch.Generator().manual_seed(0))
    nll = mean_nll(_Uniform(vocab), tokens, tokens, batch=2)
    assert perplexity(nll) == pytest.approx(vocab, rel=1e-6)
    assert bits_per_token(nll) == pytest.approx(math.log2(vocab), rel=1e-6)


def test_bleu_and_exact_match_on_known_sentences():
    refs = [numbers.to_words(402001), numbers.to_words(123456)]
    assert bleu(refs, refs) == pytest.approx(100.0)
    assert exact_match([refs[0], "eight"], refs) == 0.5
    assert bleu(["a b c d e", "x y z w"], refs) < 1.0
    assert 0 < bleu([refs[0], numbers.to_words(123457)], refs) < 100
