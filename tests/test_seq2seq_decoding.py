"""Encoder-output caching: the same tokens as re-encoding every step and as
teacher-forced recompute, with the encoder run once."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.decoding.seq2seq import generate_seq2seq


@pytest.fixture(scope="module", params=["transformer", "lstm_attention"])
def model(request):
    torch.manual_seed(0)
    config = registry.get("seq2seq", request.param).fn(src_vocab=12, tgt_vocab=20, d_model=32, n_layers=2,
                                                       max_seq_len=64)
    m = config.build()
    for p in m.parameters():
        p.data.normal_(0, 0.4)
    return m.eval()


def src(batch=3, length=7):
    return torch.randint(0, 12, (batch, length), generator=torch.Generator().manual_seed(1))


def test_cached_memory_equals_reencoding_each_step(model):
    cached = generate_seq2seq(model, src(), 10, bos_id=1)
    reencoded = generate_seq2seq(model, src(), 10, bos_id=1, reuse_memory=False)
    assert torch.equal(cached.tokens, reencoded.tokens)
    assert cached.stats.extra["encoder_calls"] == 1 and reencoded.stats.extra["encoder_calls"] == 10
    assert cached.stats.extra["memory_bytes"] > 0


@torch.no_grad()
def test_cached_decoding_equals_teacher_forced_recompute(model):
    s = src()
    tokens = generate_seq2seq(model, s, 8, bos_id=1).tokens
    tgt = torch.ones(3, 1, dtype=torch.long)
    for _ in range(8):  # greedy by full recompute of the decoder over the prefix
        tgt = torch.cat([tgt, model(s, tgt)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(tokens, tgt[:, 1:])
