"""A batch-1 decode lays its linear weights out column-major (row-major when compiled):
the same values, the same parameters, the same tokens."""
from __future__ import annotations

import pytest
import torch

from impls.decoding import generate
from impls.decoding.layout import lay_out_for_decoding
from impls.models.lm import LanguageModel, LMConfig

VOCAB = 40


def linear_weights(model):
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]


def model_with(mixer: str = "attention", ffn: str = "mlp", seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    model = LanguageModel(LMConfig(VOCAB, 32, 2, mixer=mixer, ffn=ffn, max_seq_len=64)).eval()
    for p in model.parameters():  # sharper than the 0.02 init, so greedy paths are not ties
        p.data.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("mixer", ["attention", "lstm", "mamba"])
def test_values_parameters_and_tying_stay_while_the_layout_changes(mixer):
    model = model_with(mixer)
    before = {id(w): w.detach().clone() for w in linear_weights(model)}
    head_tied = model.head.weight is model.embed.weight
    lay_out_for_decoding(model, compiled=False)
    weights = linear_weights(model)
    assert weights and all(w.stride() == (1, w.shape[0]) for w in weights)
    assert all(torch.equal(w, before[id(w)]) for w in weights)  # same Parameter objects, same values
    assert (model.head.weight is model.embed.weight) == head_tied
    lay_out_for_decoding(model, compiled=True)
    assert all(w.is_contiguous() and torch.equal(w, before[id(w)]) for w in linear_weights(model))


@pytest.mark.parametrize("mixer", ["attention", "gru", "s4d"])
def test_batch_one_tokens_are_those_of_the_row_major_model(mixer):
    prompt = torch.randint(0, VOCAB, (1, 6), generator=torch.Generator().manual_seed(1))
    reference = model_with(mixer)
    with torch.no_grad():
        expected = reference.forward(prompt)  # logits of the untouched model
        tokens = generate(model_with(mixer), prompt, 12).tokens
        relaid = model_with(mixer)
        lay_out_for_decoding(relaid, compiled=False)
        assert torch.allclose(relaid.forward(prompt), expected, atol=1e-5, rtol=1e-5)
        row_major_tokens = []
        model = model_with(mixer)
        sequence = prompt
        for _ in range(12):  # greedy by full forward passes over the row-major weights
            token = model.forward(sequence)[:, -1].argmax(-1, keepdim=True)
            row_major_tokens.append(token)
            sequence = torch.cat([sequence, token], 1)
    assert torch.equal(tokens, torch.cat(row_major_tokens, 1))


def test_other_dtypes_and_batches_keep_their_layout():
    model = model_with().to(torch.bfloat16)
    lay_out_for_decoding(model, compiled=False)
    assert all(w.is_contiguous() for w in linear_weights(model))
    model = model_with()
    prompt = torch.randint(0, VOCAB, (3, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        generate(model, prompt, 3)
    assert all(w.is_contiguous() for w in linear_weights(model))
