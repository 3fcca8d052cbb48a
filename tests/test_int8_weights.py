"""INT8 weight-only linear layers: exact against their dequantised reference,
close to the float layer, four times smaller."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from impls import models
from impls.decoding.generate import generate
from impls.decoding.int8_weights import (Int8Linear, dequantize, quantize_linear_layers,
                                         quantize_per_channel, weight_bytes)
from tests.lm_doubles import ToyAttentionLM


def test_quantisation_error_is_at_most_half_a_step_per_channel():
    w = torch.randn(32, 48, generator=torch.Generator().manual_seed(0)) * torch.logspace(-2, 1, 32)[:, None]
    q, scale = quantize_per_channel(w)
    assert q.dtype == torch.int8 and scale.shape == (32,)
    assert ((w - dequantize(q, scale)).abs() <= scale[:, None] / 2 + 1e-7).all()
    assert (q.abs().amax(1) == 127).all()  # each row uses the full range


def test_int8_linear_equals_float_linear_with_dequantised_weight():
    torch.manual_seed(0)
    linear = nn.Linear(24, 40)
    x = torch.randn(5, 7, 24)
    int8 = Int8Linear(linear)
    reference = x @ dequantize(int8.weight_int8, int8.scale).T + linear.bias
    torch.testing.assert_close(int8(x), reference, atol=1e-5, rtol=1e-5)
    assert (int8(x) - linear(x)).abs().max() < 0.05 * linear(x).abs().max()


def test_quantize_linear_layers_replaces_every_linear_and_keeps_greedy_output_close():
    model = ToyAttentionLM(d=32, sharpness=1.0)
    tokens = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, bytes_before = model(tokens), weight_bytes(model)
        quantize_linear_layers(model)
        after = model(tokens)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == 2
    assert (after - before).abs().max() < 0.05 * before.abs().max()
    assert weight_bytes(model) < bytes_before


def test_int8_linear_follows_activation_dtype():
    linear = nn.Linear(16, 8)
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    assert Int8Linear(linear)(x).dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["transformer", "lstm", "gru", "rnn", "mamba", "s4d", "moe_transformer"])
def test_every_architecture_decodes_with_int8_weights(name):
    torch.manual_seed(0)
    model = models.build(name, d_model=32, n_layers=1).eval()
    prompt = torch.randint(0, 256, (2, 5))
    with torch.no_grad():
        float_logits = model(prompt)
        quantize_linear_layers(model)
        int8_logits = model(prompt)
    assert (int8_logits - float_logits).abs().max() < 0.05 * float_logits.abs().max()
    assert generate(model, prompt, 4).tokens.shape == (2, 4)
