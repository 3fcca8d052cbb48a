"""Our readable RNN/LSTM/GRU cells equal torch's fused layers when they share weights."""
from __future__ import annotations

import pytest
import torch

from impls import registry

PAIRS = [("rnn", "rnn_torch"), ("lstm", "lstm_torch"), ("gru", "gru_torch")]


def copy_torch_weights_into_ours(ours, fused) -> None:
    """Both stack gates in torch's order (LSTM i,f,g,o; GRU r,z,n), so a plain copy."""
    names = {"rnn": ("input_to_hidden", "hidden_to_hidden")}.get(
        type(ours).__name__.lower(), ("input_to_gates", "hidden_to_gates"))
    with torch.no_grad():
        getattr(ours, names[0]).weight.copy_(fused.rnn.weight_ih_l0)
        getattr(ours, names[0]).bias.copy_(fused.rnn.bias_ih_l0)
        getattr(ours, names[1]).weight.copy_(fused.rnn.weight_hh_l0)
        getattr(ours, names[1]).bias.copy_(fused.rnn.bias_hh_l0)


@pytest.mark.parametrize("ours_name, torch_name", PAIRS)
def test_our_cell_equals_torch_fused_layer_with_shared_weights(ours_name, torch_name):
    torch.manual_seed(0)
    ours = registry.get("mixer", ours_name).fn(16)
    fused = registry.get("mixer", torch_name).fn(16)
    copy_torch_weights_into_ours(ours, fused)
    x = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # start from a non-zero state so the state layouts are compared too
        state = fused.prefill(x[:, :4], fused.init_state(3, 10))[1]
        y_fused, state_fused = fused.prefill(x[:, 4:], state)
        y_ours, state_ours = ours.prefill(x[:, 4:], state)
    torch.testing.assert_close(y_ours, y_fused, atol=1e-5, rtol=1e-4)
    for a, b in zip(torch.utils._pytree.tree_leaves(state_ours), torch.utils._pytree.tree_leaves(state_fused)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_lstm_with_gates_misordered_differs_from_torch():
    """Guards the test above: swapping the forget and input gate rows must break equality."""
    torch.manual_seed(0)
    ours, fused = registry.get("mixer", "lstm").fn(8), registry.get("mixer", "lstm_torch").fn(8)
    copy_torch_weights_into_ours(ours, fused)
    with torch.no_grad():
        w = ours.input_to_gates.weight
        w.copy_(torch.cat((w[8:16], w[:8], w[16:])))
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(ours(x), fused(x), atol=1e-3)
