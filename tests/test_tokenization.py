"""Tokenizers (impls/tokenizers), the tokenized corpus, and the tokenize workload."""
from __future__ import annotations

import pytest
import torch

from harness import metrics as catalogue
from harness.case import Case
from harness.quality import corpus, tokenization
from harness.workloads.tokenize import Tokenize
from harness.workloads.train import LMTrainParams
from impls import registry
from impls.tokenizers.bpe import BPETokenizer
from impls.tokenizers.char import CharTokenizer

TEXT = corpus.default_text()[:60000]
SAMPLE = "def f(x):\n    return x ** 2  # a comment, with ünïcödé\n"


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.fit(TEXT, 600)


def test_bpe_round_trips_text_it_never_saw_including_characters_outside_its_training(bpe):
    ids, ends = bpe.encode(SAMPLE)
    assert bpe.decode(ids) == SAMPLE
    assert int(ends[-1]) == len(SAMPLE)
    assert bool((ends[1:] >= ends[:-1]).all())


def test_bpe_merges_shorten_the_text_more_as_the_vocabulary_grows(bpe):
    small = BPETokenizer.fit(TEXT, 300)
    lengths = [len(t.encode(TEXT[:5000])[0]) for t in (small, bpe)]
    assert 5000 > lengths[0] > lengths[1]
    assert small.vocab_size == 300 and bpe.vocab_size == 600


def test_bpe_refuses_a_vocabulary_below_its_byte_alphabet():
    with pytest.raises(ValueError, match="at least 257"):
        BPETokenizer.fit(TEXT, 100)


def test_char_tokenizer_is_one_id_per_character_and_refuses_unknown_ones():
    tokenizer = CharTokenizer.fit("abc ")
    ids, ends = tokenizer.encode("cab a")
    assert ids.tolist() == [3, 1, 2, 0, 1] and ends.tolist() == [1, 2, 3, 4, 5]
    assert tokenizer.decode(ids) == "cab a"
    with pytest.raises(ValueError, match="outside the fitted alphabet"):
        tokenizer.encode("abd")


def test_char_corpus_is_the_one_the_char_lm_task_always_used():
    tokenized, plain = tokenization.load("char"), corpus.load()
    assert torch.equal(tokenized.train.ids, plain.train) and torch.equal(tokenized.valid.ids, plain.valid)
    assert tokenized.vocab_size == plain.vocab_size and tokenized.chars_per_token == 1.0


def test_bpe_corpus_counts_the_characters_its_tokens_cover():
    tokenized = tokenization.load("bpe-400")
    valid_chars = len(corpus.load().valid)
    assert int(tokenized.valid.ends[-1]) == valid_chars
    assert tokenized.valid.chars_between(0, len(tokenized.valid.ids) - 1) == valid_chars
    assert 1.5 < tokenized.chars_per_token < 4


@pytest.mark.parametrize("name", ["bpe", "bpe-0x10", "bpe-100", "word"])
def test_a_tokenizer_name_that_is_not_char_or_a_large_enough_bpe_is_refused(name):
    with pytest.raises(ValueError):
        LMTrainParams(tokenizer=name)


@pytest.mark.parametrize("impl, vocab", [("char", 512), ("bpe", 300)])
def test_tokenize_workload_round_trips_and_counts_tokens_and_chars(impl, vocab):
    params = {"vocab_size": vocab, "text_chars": 4000}
    case = Case(suite="t", workload="tokenize", family="tokenizer", impl=impl, label=impl, params=params,
                impl_params=(), axes=(), device="cpu")
    prepared = Tokenize().prepare(case, registry.get("tokenizer", impl))
    assert prepared.check()["within_tolerance"] == 1.0
    assert prepared.work["chars"] == 4000
    assert prepared.work["tokens"] == (4000 if impl == "char" else pytest.approx(4000 / prepared.stats()["chars_per_token"]))
    ids, _ = prepared.run()
    assert len(ids) == prepared.work["tokens"]


@pytest.mark.parametrize("tokenizer", ["char", "bpe-300"])
def test_char_lm_reports_bits_per_character_over_the_characters_its_tokens_cover(tokenizer):
    from harness.quality import lm_tasks
    from impls import models

    def make(vocab: int, length: int):
        torch.manual_seed(0)
        return models.config("gru", "model", vocab_size=vocab, d_model=16, n_layers=1, max_seq_len=length).build()

    p = LMTrainParams(tokenizer=tokenizer, steps=3, seq_len=16, batch=4, eval_tokens=512, warmup_steps=1)
    result = lm_tasks.char_lm(make, p)
    assert result["val_bpc"] == pytest.approx(result["val_bits_per_token"] / result["chars_per_token"])
    assert result["chars_per_window"] == pytest.approx(16 * result["chars_per_token"])
    assert (result["chars_per_token"] == 1.0) == (tokenizer == "char")
    catalogue.check(result)  # the worker would make a case that reports an unknown metric an error
    assert result["vocab_size"] == (corpus.load().vocab_size if tokenizer == "char" else 300)


def test_model_workload_with_a_tokenizer_reads_corpus_windows_and_counts_their_characters():
    from harness.errors import Skip
    from harness.workloads.model import Model

    def prepare(impl: str, tokenizer: str | None):
        params = {"d_model": 32, "n_layers": 1, "batch": 2, "seq_len": 16, "tokenizer": tokenizer}
        case = Case(suite="t", workload="model", family="model", impl=impl, label=impl, params=params,
                    impl_params=(), axes=(), device="cpu")
        return Model().prepare(case, registry.get("model", impl))

    plain, bpe = prepare("gru", None), prepare("gru", "bpe-300")
    assert "chars" not in plain.work and bpe.work["tokens"] == 32
    assert bpe.work["chars"] == pytest.approx(32 * tokenization.load("bpe-300").chars_per_token)
    assert bpe.check()["within_tolerance"] == 1.0
    with pytest.raises(Skip, match="its checkpoint's own vocabulary"):
        prepare("pretrained", "char")
