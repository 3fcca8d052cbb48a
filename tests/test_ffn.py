"""MLP and MoE feed-forward layers."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from impls import registry
from impls.ffn.moe import moe_reference, routing_summary, slot_in_expert


def build(name: str, d_model: int = 16, seed: int = 0, **params):
    torch.manual_seed(seed)
    return registry.get("ffn", name).fn(d_model, **params)


def tokens(n: int = 24, d: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, n // 2, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("activation", ["relu", "gelu", "swiglu"])
def test_mlp_equals_its_formula(activation):
    mlp, x = build("mlp", activation=activation, hidden_multiple=2), tokens()
    h = x @ mlp.up.weight.T + mlp.up.bias
    if activation == "swiglu":
        a, b = h.chunk(2, dim=-1)
        h = F.silu(a) * b
    else:
        h = F.relu(h) if activation == "relu" else F.gelu(h)
    torch.testing.assert_close(mlp(x), h @ mlp.down.weight.T + mlp.down.bias)
    assert mlp.down.in_features == 32 and mlp.aux_loss is None


@pytest.mark.parametrize("top_k, capacity_factor, activation",
                         [(1, 1.25, "gelu"), (1, 0.5, "relu"), (2, 1.0, "swiglu"), (2, 0.4, "gelu")])
def test_batched_dispatch_equals_token_by_token_reference(top_k, capacity_factor, activation):
    moe, x = build("moe", experts=4, top_k=top_k, capacity_factor=capacity_factor,
                   hidden=8, activation=activation), tokens()
    with torch.no_grad():
        torch.testing.assert_close(moe(x), moe_reference(moe, x), atol=1e-5, rtol=1e-4)


def test_slot_in_expert_counts_in_priority_order():
    expert = torch.tensor([2, 0, 2, 1, 0, 2])
    assert slot_in_expert(expert, 3).tolist() == [0, 0, 1, 0, 1, 2]


def collapsed_moe(experts: int = 4, capacity_factor: float = 1.0, d: int = 16):
    """Router sends every token to expert 0: its weight row 0 is the (positive) tokens' direction."""
    moe = build("moe", d_model=d, experts=experts, capacity_factor=capacity_factor, hidden=8)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[0] = 1.0
    x = tokens(d=d).abs() + 0.1  # positive, so logit 0 > 0 = the others
    return moe, x


def test_capacity_is_respected_and_overflow_tokens_are_zero():
    moe, x = collapsed_moe(experts=4, capacity_factor=1.0)  # capacity = ceil(24 / 4) = 6
    with torch.no_grad():
        y = moe(x).reshape(-1, 16)
    assert moe.capacity(24) == 6
    assert (y[:6].abs().sum(-1) > 0).all()  # the first 6 tokens in order are processed
    assert (y[6:] == 0).all()               # the other 18 are dropped: zeros, the residual carries them
    stats = moe.stats
    assert stats["tokens_dropped"] == pytest.approx(18 / 24)
    assert stats["expert_load"] == [1.0, 0.0, 0.0, 0.0]
    assert stats["load_balance"] == pytest.approx(math.sqrt(3))  # CV of a one-hot load


def test_balance_loss_is_one_for_uniform_router_probabilities():
    moe = build("moe", experts=4, z_loss_coef=0.0, load_balance_coef=1.0)
    with torch.no_grad():
        moe.router.weight.zero_()  # every prob is 1/4
        moe(tokens())
    assert moe.stats["load_balance_loss"] == pytest.approx(1.0, abs=1e-6)
    assert moe.stats["router_z_loss"] == pytest.approx(math.log(4) ** 2, abs=1e-5)
    assert float(moe.aux_loss) == pytest.approx(1.0, abs=1e-6)


def test_balance_loss_is_experts_times_prob_when_routing_collapses():
    moe, x = collapsed_moe(experts=4)
    with torch.no_grad():
        moe(x)
        p0 = moe.router(x.reshape(-1, 16)).softmax(-1)[:, 0].mean()
    assert moe.stats["load_balance_loss"] == pytest.approx(4 * float(p0), rel=1e-5)


def test_even_routing_drops_nothing_and_has_zero_load_variation():
    moe = build("moe", d_model=4, experts=4, capacity_factor=1.0, hidden=8)
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(4) * 5)
        x = torch.eye(4).repeat(6, 1)  # 24 tokens, 6 per expert = capacity
        y = moe(x)
    assert moe.stats["tokens_dropped"] == 0.0 and moe.stats["load_balance"] == 0.0
    assert moe.stats["load_balance_loss"] == pytest.approx(1.0, abs=1e-6)
    assert (y.abs().sum(-1) > 0).all()


def test_gradients_reach_router_and_every_used_expert():
    moe, x = build("moe", experts=4, top_k=2, hidden=8), tokens()
    (moe(x).pow(2).sum() + moe.aux_loss).backward()
    assert moe.router.weight.grad.abs().sum() > 0
    used = torch.tensor(moe.stats["expert_load"]) > 0
    assert (moe.w_in.grad.abs().sum((1, 2)) > 0)[used].all()


def test_mlp_hidden_sets_the_width_for_every_activation():
    for activation in ("gelu", "swiglu"):
        mlp = build("mlp", activation=activation, hidden=37)
        assert mlp.hidden == mlp.down.in_features == 37
        assert mlp.up.out_features == (74 if activation == "swiglu" else 37)


def test_routing_summary_averages_the_moe_layers_of_a_model():
    collapsed, x = collapsed_moe(experts=4, capacity_factor=1.0)  # 18 of 24 dropped, load one-hot
    even = build("moe", d_model=16, experts=4, capacity_factor=4.0, hidden=8)  # capacity for all: none dropped
    model = torch.nn.Sequential(collapsed, build("mlp"), even)
    with torch.no_grad():
        collapsed(x), even(x)
    summary = routing_summary(model)
    assert summary["moe_tokens_dropped"] == pytest.approx((18 / 24 + 0.0) / 2)
    even_max = max(even.stats["expert_load"]) * 4
    assert summary["moe_load_max_over_mean"] == pytest.approx((4.0 + even_max) / 2)
    assert summary["moe_load_cv"] == pytest.approx((math.sqrt(3) + even.stats["load_balance"]) / 2)
    assert summary["moe_balance_loss"] == pytest.approx(
        (collapsed.stats["load_balance_loss"] + even.stats["load_balance_loss"]) / 2)
    assert routing_summary(build("mlp")) == {}
