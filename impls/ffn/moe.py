"""Mixture of experts FFN with capacity (Switch Transformer top-1, GShard-style top-k).

    probs = softmax(router(x))                    (N, E), in float32
    gate, expert = top_k(probs)                   top-1 keeps the raw prob (Switch);
                                                  top-k renormalises the k gates to sum to 1
    each expert takes at most capacity = ceil(capacity_factor * N * k / E) assignments,
    filled in priority order: every token's first choice before any second choice,
    then token order; the rest are dropped.
    y[token] = sum over its kept assignments of gate * expert_mlp(x[token])

A token whose every assignment is dropped gets y = 0: the block's residual
connection carries it through unchanged (as in Switch).
Dispatch is batched: assignments are sorted by expert, placed into a
(E, capacity, d) bucket tensor, and all experts run as two torch.bmm calls on
stacked (E, d, h) and (E, h, d) weights; outputs return by index_add. There is
no Python loop over tokens or experts. `moe_reference` is the plain
token-by-token loop it must equal.

Auxiliary losses (aux_loss = load_balance_coef * L_balance + z_loss_coef * L_z):
    L_balance = E * sum_i f_i * P_i   f_i: fraction of assignments routed to expert i
                                      (before dropping), P_i: mean router prob of i.
                                      Equals 1 when either is uniform; E when collapsed.
    L_z = mean over tokens of logsumexp(router logits)^2   (ST-MoE router z-loss)
"""
from __future__ import annotations

import math

import torch
from torch import nn

from impls.ffn.mlp import ACTIVATIONS, activate, up_width
from impls.registry import register


@register("ffn", "moe",
          params={"experts": 8, "top_k": 1, "capacity_factor": 1.25, "hidden": None,
                  "activation": "gelu", "load_balance_coef": 0.01, "z_loss_coef": 0.001},
          doc="mixture of experts (top-k routing, capacity, balance and z losses, bmm dispatch)")
class MoE(nn.Module):
    """x (..., d_model) -> (..., d_model). hidden defaults to 4 * d_model per expert."""

    def __init__(self, d_model: int, experts: int = 8, top_k: int = 1, capacity_factor: float = 1.25,
                 hidden: int | None = None, activation: str = "gelu",
                 load_balance_coef: float = 0.01, z_loss_coef: float = 0.001):
        super().__init__()
        if activation not in ACTIVATIONS or not 1 <= top_k <= experts or capacity_factor <= 0:
            raise ValueError(f"need activation in {ACTIVATIONS}, 1 <= top_k <= experts, "
                             f"capacity_factor > 0; got {activation!r}, {top_k}, {experts}, {capacity_factor}")
        hidden = hidden or 4 * d_model
        self.experts, self.top_k, self.capacity_factor, self.hidden = experts, top_k, capacity_factor, hidden
        self.activation = activation
        self.load_balance_coef, self.z_loss_coef = load_balance_coef, z_loss_coef
        self.router = nn.Linear(d_model, experts, bias=False)
        self.w_in = nn.Parameter(torch.randn(experts, d_model, up_width(hidden, activation)) / math.sqrt(d_model))
        self.w_out = nn.Parameter(torch.randn(experts, hidden, d_model) / math.sqrt(hidden))
        self.aux_loss: torch.Tensor | None = None
        self._stats: dict[str, torch.Tensor] = {}

    def capacity(self, tokens: int) -> int:
        """Assignments each expert accepts for a batch of `tokens` tokens."""
        return math.ceil(self.capacity_factor * tokens * self.top_k / self.experts)

    def route(self, tokens: torch.Tensor):
        """tokens (N, d) -> logits (N, E) fp32, probs (N, E), and the assignments in
        priority order: expert, token, gate (each (k*N,)) and slot in the expert's bucket."""
        logits = self.router(tokens).float()
        probs = logits.softmax(dim=-1)
        gate, expert = probs.topk(self.top_k, dim=-1)  # (N, k)
        if self.top_k > 1:
            gate = gate / gate.sum(dim=-1, keepdim=True)
        n = tokens.shape[0]
        expert, gate = expert.T.reshape(-1), gate.T.reshape(-1)  # rank-major: priority order
        token = torch.arange(n, device=tokens.device).repeat(self.top_k)
        return logits, probs, expert, token, gate, slot_in_expert(expert, self.experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, x.shape[-1])  # (N, d)
        n, d = tokens.shape
        logits, probs, expert, token, gate, slot = self.route(tokens)
        capacity = self.capacity(n)
        kept = slot < capacity
        e, s, t = expert[kept], slot[kept], token[kept]
        buckets = tokens.new_zeros(self.experts, capacity, d)  # empty slots stay zero
        buckets[e, s] = tokens[t]
        out = torch.bmm(activate(torch.bmm(buckets, self.w_in), self.activation), self.w_out)
        y = tokens.new_zeros(n, d).index_add_(0, t, out[e, s] * gate[kept, None].to(x.dtype))
        self._set_losses_and_stats(logits, probs, expert, kept)
        return y.view(x.shape)

    def _set_losses_and_stats(self, logits, probs, expert, kept) -> None:
        load = torch.bincount(expert, minlength=self.experts).float() / expert.numel()  # f_i
        balance = self.experts * (load * probs.mean(dim=0)).sum()
        z_loss = torch.logsumexp(logits, dim=-1).pow(2).mean()
        self.aux_loss = self.load_balance_coef * balance + self.z_loss_coef * z_loss
        # kept as tensors; `stats` converts on demand so forward never syncs the device
        self._stats = {"tokens_dropped": 1 - kept.float().mean(), "expert_load": load,
                       "load_balance": load.std(unbiased=False) / load.mean(),
                       "load_balance_loss": balance.detach(), "router_z_loss": z_loss.detach()}

    @property
    def stats(self) -> dict:
        """After forward: tokens_dropped (fraction of assignments over capacity),
        expert_load (per-expert fraction of assignments, before dropping),
        load_balance (coefficient of variation of expert_load; 0 = perfectly even),
        load_balance_loss and router_z_loss (unscaled)."""
        return {name: value.tolist() if value.dim() else float(value)
                for name, value in self._stats.items()}


def slot_in_expert(expert: torch.Tensor, experts: int) -> torch.Tensor:
    """(A,) expert of each assignment, in priority order -> (A,) its 0-based position
    among the assignments to the same expert. A stable sort by expert keeps the
    priority order within each expert."""
    order = torch.sort(expert, stable=True).indices
    counts = torch.bincount(expert, minlength=experts)
    starts = torch.cumsum(counts, dim=0) - counts
    slot = torch.empty_like(expert)
    slot[order] = torch.arange(expert.numel(), device=expert.device) - starts[expert[order]]
    return slot


def moe_reference(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """The same layer, one token and one choice at a time: the specification of MoE.forward."""
    tokens = x.reshape(-1, x.shape[-1])
    probs = moe.router(tokens).float().softmax(dim=-1)
    gate, expert = probs.topk(moe.top_k, dim=-1)
    if moe.top_k > 1:
        gate = gate / gate.sum(dim=-1, keepdim=True)
    capacity, used = moe.capacity(tokens.shape[0]), [0] * moe.experts
    y = torch.zeros_like(tokens)
    for rank in range(moe.top_k):  # all first choices, then all second choices, ...
        for i in range(tokens.shape[0]):
            e = int(expert[i, rank])
            if used[e] == capacity:
                continue  # dropped
            used[e] += 1
            h = activate(tokens[i] @ moe.w_in[e], moe.activation)
            y[i] += gate[i, rank].to(x.dtype) * (h @ moe.w_out[e])
    return y.view(x.shape)


def routing_summary(model: nn.Module) -> dict[str, float]:
    """Routing of the last forward of `model`, averaged over its MoE layers ({} without any):
    moe_tokens_dropped (fraction of assignments over capacity), moe_load_max_over_mean
    (the busiest expert's share over the even share; 1 = balanced, experts = collapsed),
    moe_load_cv (coefficient of variation of the shares), moe_balance_loss and
    moe_z_loss (the unscaled auxiliary losses)."""
    layers = [m.stats for m in model.modules() if isinstance(m, MoE) and m._stats]
    if not layers:
        return {}

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values)

    return {"moe_tokens_dropped": mean(s["tokens_dropped"] for s in layers),
            "moe_load_max_over_mean": mean(max(s["expert_load"]) * len(s["expert_load"]) for s in layers),
            "moe_load_cv": mean(s["load_balance"] for s in layers),
            "moe_balance_loss": mean(s["load_balance_loss"] for s in layers),
            "moe_z_loss": mean(s["router_z_loss"] for s in layers)}
