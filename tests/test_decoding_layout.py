"""A batch-1 decode lays its linear weights out column-major (row-major when compiled):
the same values, the same parameters, the same tokens."""
from __future__ import annotations

import copy

import pytest
import torch

from impls.decoding import generate
from impls.decoding import layout
from impls.decoding.layout import PackedLinear, lay_out_for_decoding
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
        row_major_tokens = greedy_by_full_forward(model_with(mixer), prompt, 12)
    assert torch.equal(tokens, row_major_tokens)


def greedy_by_full_forward(model, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy tokens from whole forward passes over the untouched model (no cache, no step)."""
    tokens, sequence = [], prompt
    for _ in range(steps):
        token = model.forward(sequence)[:, -1].argmax(-1, keepdim=True)
        tokens.append(token)
        sequence = torch.cat([sequence, token], 1)
    return torch.cat(tokens, 1)


def test_other_batches_keep_their_layout():
    model = model_with()
    prompt = torch.randint(0, VOCAB, (3, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        generate(model, prompt, 3)
    assert all(w.is_contiguous() for w in linear_weights(model))
    assert not any(isinstance(m, PackedLinear) for m in model.modules())


bf16_packing = pytest.mark.skipif(not layout._packs_bf16(), reason="oneDNN has no bf16 kernels on this CPU")


@bf16_packing
@pytest.mark.parametrize("mixer", ["attention", "mamba"])
def test_bf16_decode_through_packed_weights_gives_the_plain_layers_tokens(mixer, monkeypatch):
    plain = model_with(mixer).to(torch.bfloat16)
    packed = model_with(mixer).to(torch.bfloat16)
    prompt = torch.randint(0, VOCAB, (1, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = plain.forward(prompt)
        lay_out_for_decoding(packed, compiled=False)
        assert all(type(m) is PackedLinear for m in packed.modules() if isinstance(m, torch.nn.Linear))
        assert torch.equal(packed.forward(prompt), expected)  # oneDNN's result, bit for bit
        tokens = generate(packed, prompt, 6).tokens
        monkeypatch.setattr(layout, "_packs_bf16", lambda: False)
        expected_tokens = generate(plain, prompt, 6).tokens  # the same decode through torch's bf16 GEMV
    assert torch.equal(tokens, expected_tokens)
    assert (packed.head.weight is packed.embed.weight) == (plain.head.weight is plain.embed.weight)


@bf16_packing
def test_packed_layers_follow_their_weights_and_survive_a_copy():
    model = model_with().to(torch.bfloat16)
    lay_out_for_decoding(model, compiled=False)
    x = torch.randn(2, 32).to(torch.bfloat16)
    layer = next(m for m in model.modules() if isinstance(m, PackedLinear))
    with torch.no_grad():
        layer(x)
        layer.weight.mul_(2)  # changed in place: packed again
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        twin = copy.deepcopy(model)  # the opaque packed tensor stays behind; the copy packs its own
        tokens = torch.zeros(1, 3, dtype=torch.long)
        assert torch.equal(twin.forward(tokens), model.forward(tokens))
    lay_out_for_decoding(model, compiled=True)
    assert not any(isinstance(m, PackedLinear) for m in model.modules())


def test_without_onednn_bf16_kernels_bf16_layers_stay_plain(monkeypatch):
    monkeypatch.setattr(layout, "_packs_bf16", lambda: False)
    model = model_with().to(torch.bfloat16)
    lay_out_for_decoding(model, compiled=False)
    assert all(type(m) is torch.nn.Linear and m.weight.is_contiguous()
               for m in model.modules() if isinstance(m, torch.nn.Linear))
