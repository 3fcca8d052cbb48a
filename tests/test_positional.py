"""Each positional encoding's defining property."""
from __future__ import annotations

import math

import pytest
import torch

from impls import positional
from impls.positional.alibi import slopes
from impls.positional.rope import apply_rope


def test_get_returns_registered_positional_of_each_kind():
    assert positional.get("rope") is apply_rope
    assert positional.get("sinusoidal")(8, 16)(torch.arange(3)).shape == (3, 8)


def test_rope_dot_product_depends_only_on_relative_position():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 16, generator=g, dtype=torch.float64), torch.randn(1, 16, generator=g, dtype=torch.float64)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q, torch.tensor([m]))
        kn = apply_rope(k, torch.tensor([n]))
        return float((qm * kn).sum())

    for m, n, shift in [(3, 1, 5), (0, 7, 11), (10, 10, 100)]:
        assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-4
    assert abs(score(3, 1) - score(5, 1)) > 1e-3  # but it does depend on the distance


def test_rope_preserves_norm_and_is_identity_at_position_zero():
    x = torch.randn(2, 3, 4, 8, generator=torch.Generator().manual_seed(0))
    rotated = apply_rope(x, torch.arange(4))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[..., 0, :], x[..., 0, :])


def test_alibi_slopes_for_8_heads_are_powers_of_half():
    torch.testing.assert_close(slopes(8), torch.tensor([2.0 ** -i for i in range(1, 9)]))


def test_alibi_slopes_for_non_power_of_two_interleave_the_next_power():
    # 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8 then the odd-indexed 8-head ones 2^-1, 2^-3
    expected = [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8, 2.0 ** -1, 2.0 ** -3]
    torch.testing.assert_close(slopes(6), torch.tensor(expected))


def test_alibi_bias_is_minus_slope_times_distance():
    bias = positional.get("alibi")(2, torch.tensor([5, 6]), torch.tensor([0, 5, 6]))
    torch.testing.assert_close(bias[0], -0.0625 * torch.tensor([[5.0, 0.0, -1.0], [6.0, 1.0, 0.0]]))
    assert bias.shape == (2, 2, 3)


def test_symmetric_alibi_bias_penalises_distance_on_both_sides_alike():
    positions = torch.arange(5)
    bias = positional.get("alibi")(2, positions, positions, symmetric=True)
    torch.testing.assert_close(bias, bias.transpose(-1, -2))
    causal = positional.get("alibi")(2, positions, positions)
    lower = torch.ones(5, 5, dtype=torch.bool).tril()
    torch.testing.assert_close(bias[:, lower], causal[:, lower])  # the same where j <= i
    assert (bias <= 0).all()


def test_sinusoidal_at_position_zero_is_alternating_zero_one():
    table = positional.get("sinusoidal")(8)(torch.arange(3))
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1, 0, 1, 0, 1, 0, 1]))
    # the first pair has frequency 1: sin(p), cos(p)
    torch.testing.assert_close(table[2, :2], torch.tensor([math.sin(2.0), math.cos(2.0)]))


def test_learned_has_a_max_len_by_d_parameter_and_rejects_positions_past_it():
    module = positional.get("learned")(12, max_len=20)
    assert [tuple(p.shape) for p in module.parameters()] == [(20, 12)]
    torch.testing.assert_close(module(torch.tensor([0, 19])), module.table[[0, 19]])
    with pytest.raises(ValueError, match="max_len"):
        module(torch.tensor([20]))
