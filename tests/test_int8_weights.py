"""INT8 weight-only linear layers: every matmul path (torch's int8 kernel, int8 x int8
with quantised activations, dequantise per call) against the dequantised reference,
close to the float layer, four times smaller, and the path that ran recorded."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from impls import models
from impls.decoding import generate
from impls.decoding import int8_weights
from impls.decoding.int8_weights import (KERNELS, Int8Linear, candidate_paths, dequantize, kernel_paths,
                                         quantize_linear_layers, quantize_per_channel, weight_bytes)
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


# max |error| / max |reference|: the activation dtype's rounding, plus the per-row
# activation quantisation of the W8A8 path
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.5e-2}
W8A8_EXTRA = 2e-2


@pytest.mark.parametrize("path", list(KERNELS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("rows,n_in,n_out", [(1, 16, 3), (5, 32, 40), (19, 64, 48)])
def test_every_int8_path_matches_the_dequantised_weight(path, dtype, rows, n_in, n_out):
    g = torch.Generator().manual_seed(rows * n_in + n_out)
    linear = nn.Linear(n_in, n_out)
    linear.weight.data = torch.randn(n_out, n_in, generator=g) * torch.logspace(-1, 1, n_out)[:, None]
    x = torch.randn(rows, n_in, generator=g).to(dtype)
    layer = Int8Linear(linear, path=path)
    expected = x.double() @ dequantize(layer.weight_int8, layer.scale).double().T + linear.bias.detach().double()
    with torch.no_grad():
        got = layer(x)
    assert got.dtype == dtype and layer.last_path == path
    rel = float((got.double() - expected).abs().max() / expected.abs().max())
    assert rel <= TOLERANCE[dtype] + (W8A8_EXTRA if path == "int_mm" else 0.0), rel


def test_cpu_layers_take_the_first_path_that_runs_and_record_it():
    model = quantize_linear_layers(ToyAttentionLM(d=32))
    tokens = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.to(torch.bfloat16)(tokens)
        assert kernel_paths(model) == {"weight_int8pack_mm": 2}  # torch's int8 kernel, vectorised for bf16
        model.float()(tokens)
    assert kernel_paths(model) == {candidate_paths(torch.device("cpu"), torch.float32)[0]: 2}


def test_cpu_kernel_is_kept_to_shapes_and_addresses_it_reads_correctly():
    """torch's CPU int8 kernel reads K in aligned vector steps without checking: other widths
    fall back to dequantising, and a view starting off alignment is copied first."""
    g = torch.Generator().manual_seed(0)
    narrow = Int8Linear(nn.Linear(24, 8))
    x = torch.randn(3, 24, generator=g).bfloat16()
    with torch.no_grad():
        narrow(x)
    assert narrow.last_path == "dequantize"
    layer = Int8Linear(nn.Linear(32, 8))
    packed = torch.randn(3 * 32 + 1, generator=g).bfloat16()
    shifted = packed[1:].view(3, 32)  # contiguous, but 2 bytes past an aligned start
    expected = KERNELS["dequantize"](shifted, layer.weight_int8, layer.scale) + layer.bias.bfloat16()
    with torch.no_grad():
        got = layer(shifted)
    assert layer.last_path == "weight_int8pack_mm"
    torch.testing.assert_close(got, expected, atol=2e-2 * float(expected.abs().max()), rtol=0)


def test_a_kernel_that_raises_falls_back_to_dequantising_and_is_not_tried_again(monkeypatch):
    calls = []

    def unsupported(*args):
        calls.append(1)
        raise NotImplementedError("no kernel here")

    monkeypatch.setitem(KERNELS, "weight_int8pack_mm", unsupported)
    monkeypatch.setattr(int8_weights, "_FAILED", set())
    layer = Int8Linear(nn.Linear(16, 8))
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    expected = KERNELS["dequantize"](x, layer.weight_int8, layer.scale) + layer.bias.to(x.dtype)
    for _ in range(2):
        with torch.no_grad():
            torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
        assert layer.last_path == "dequantize"
    assert len(calls) == 1


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
