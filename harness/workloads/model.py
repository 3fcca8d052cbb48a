"""The `model` workload: a whole decoder-only LM, forward or one training step.

The impl is a model preset (family "model"); its own params (attention,
heads, positional, norm, activation, experts, top_k...) come from the suite.
With `target_params` the workload sizes every architecture to about that many
parameters (impls.models.matched: d_model, then the ffn width); the record
states the actual count and its deviation. The preset "pretrained" times a
local GPT-2 checkpoint at its own size. Models with MoE layers also record
their routing (tokens dropped, expert load, auxiliary losses).

Correctness: the incremental path must agree with the full forward — logits
of prefill(first half) + step(each later token) are compared with forward()
on a short slice, at the case's precision.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from impls import models, registry
from impls.ffn.moe import MoE, routing_summary
from impls.models import presets
from impls.precision import FLOAT_DTYPES
from impls.registry import Impl

CHECK_TOKENS = 32  # length of the forward-vs-incremental slice
CHECK_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}  # max |diff| / max |logits|


class ModelSize(CommonParams):
    """How big a model is: d_model directly, or chosen to match target_params."""

    d_model: int = Field(128, ge=1)
    # overrides d_model: d_model, then the ffn width, chosen so the count is within about 1%
    target_params: int | None = Field(None, ge=1)
    n_layers: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)


class ModelParams(ModelSize):
    batch: int = Field(8, ge=1)
    seq_len: int = Field(256, ge=1)
    direction: Literal["fwd", "train_step"] = "fwd"


def sized_config(name: str, family: str, d_model: int, target_params: int | None,
                 **kwargs: Any) -> tuple[Any, dict[str, float]]:
    """The config of preset `name` at d_model, or sized to target_params (kwargs: the
    preset's other arguments), and what the record says about its size: target_params,
    param_deviation (count / target - 1) and ffn_hidden (the width the budget chose)."""
    if not target_params:
        return models.config(name, family, d_model=d_model, **kwargs), {}
    match = models.matched(name, target_params, family=family, **kwargs)
    facts = {"target_params": float(match.target), "param_deviation": match.deviation}
    if match.ffn_hidden is not None:
        facts["ffn_hidden"] = float(match.ffn_hidden)
    return match.config, facts


def build_sized(case: Case, size: ModelSize, vocab_size: int, max_seq_len: int,
                backward: bool = False) -> tuple[torch.nn.Module, dict[str, float]]:
    """The case's preset at `size`, seeded, on the case's device, in fp32, and its size
    facts (param_count, d_model, and sized_config's). A checkpoint preset (fixed_size) has
    its own sizes. Skip when a part it runs (the chosen attention impl) cannot run here
    (`backward`: it will be trained)."""
    impl = registry.get("model", case.impl)
    if backward and not impl.backward:
        raise Skip(f"model {impl.name} is forward-only (registered with backward=False)")
    if impl.meta.get("fixed_size"):
        model_config, facts = models.config(case.impl, "model", **case.impl_kwargs()), {}
    else:
        kwargs = dict(vocab_size=vocab_size, n_layers=size.n_layers, max_seq_len=max_seq_len, **case.impl_kwargs())
        model_config, facts = sized_config(case.impl, "model", size.d_model, size.target_params, **kwargs)
    torch.manual_seed(size.seed)
    model = model_config.build().to(case.device)
    _refuse_impossible(model.config, case.device, size.precision, backward, vocab_size, max_seq_len)
    return model, {"param_count": float(param_count(model)), "d_model": float(model.config.d_model), **facts}


def build_model(case: Case, size: ModelSize, vocab_size: int, max_seq_len: int) -> torch.nn.Module:
    """build_sized's model alone."""
    return build_sized(case, size, vocab_size, max_seq_len)[0]


def _refuse_impossible(config, device: str, precision: str, backward: bool, vocab_size: int,
                       max_seq_len: int) -> None:
    if vocab_size > config.vocab_size:
        raise ValueError(f"the task needs a vocabulary of {vocab_size}; the model has {config.vocab_size}")
    if max_seq_len > config.max_seq_len:
        raise Skip(f"the model has {config.max_seq_len} positions, the case needs {max_seq_len}")
    reason = (presets.unavailable(config, device, precision)
              or (_forward_only_part(config) if backward else None)
              or _attention_unsupported(config, device, backward, max_seq_len))
    if reason:
        raise Skip(reason)


def _forward_only_part(config) -> str | None:
    """Why the model cannot be trained: a mixer or ffn it runs is forward-only (None: none is)."""
    for family, name in (("mixer", config.mixer), ("ffn", config.ffn)):
        if name != "none" and not registry.get(family, name).backward:
            return f"{family} {name} is forward-only (registered with backward=False)"
    return None


def _attention_unsupported(config, device: str, backward: bool, seq_len: int) -> str | None:
    """Why the attention impl the model runs cannot do this case (None: it can), asked in
    the op workload's terms, as its `supports` expects."""
    name = config.mixer_params.get("attention")
    if not name:
        return None
    impl = registry.get("attention", name)
    if backward and not impl.backward:
        return f"attention {name} has no backward pass"
    supports = impl.meta.get("supports")
    if not supports:
        return None
    heads = config.mixer_params.get("heads", 4)
    return supports({"device": device, "causal": True, "direction": "fwd_bwd" if backward else "fwd",
                     "seq_len": seq_len, "kv_len": seq_len, "heads": heads,
                     "kv_heads": config.mixer_params.get("kv_heads") or heads, "head_dim": config.d_model // heads})


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied tensor is yielded once


@register_workload
class Model(Workload):
    name = "model"

    def params_model(self, family: str):
        if family != "model":
            raise KeyError(f"the model workload has no {family} family; valid: model")
        return ModelParams

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: ModelParams = case.typed
        if p.precision not in FLOAT_DTYPES:
            raise Skip(f"the model workload runs float precisions only, not {p.precision}")
        model, facts = build_sized(case, p, p.vocab_size, p.seq_len, backward=p.direction == "train_step")
        model = model.to(FLOAT_DTYPES[p.precision])
        gen = torch.Generator().manual_seed(p.seed)
        # the model's own vocabulary: a checkpoint's, or the suite's vocab_size
        tokens = torch.randint(0, model.config.vocab_size, (p.batch, p.seq_len + 1), generator=gen).to(case.device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        run = _train_step(model, inputs, targets) if p.direction == "train_step" else _forward(model, inputs)
        return Prepared(run=run, check=lambda: check(model, inputs, p.precision),
                        work=_work(model, p, int(facts["param_count"])), stats=lambda: _stats(model, p, facts, inputs))


def _forward(model, inputs):
    model.eval()

    def run():
        with torch.no_grad():
            return model(inputs)

    return run


def _train_step(model, inputs, targets):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run():
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten()) + model.aux_loss()
        loss.backward()
        optimizer.step()

    return run


def _work(model, p: ModelParams, count: int) -> dict[str, float]:
    """FLOPs per call: 2 per parameter per token forward, 6 with backward (Kaplan et al. 2020),
    plus attention's 2 * n_layers * seq_len * d_model per token forward (causal average)."""
    tokens = p.batch * p.seq_len
    per_token = 2.0 * count
    if model.config.mixer == "attention":
        per_token += 2.0 * model.config.n_layers * p.seq_len * model.config.d_model
    factor = 3.0 if p.direction == "train_step" else 1.0
    return {"tokens": float(tokens), "flops": factor * per_token * tokens}


def _stats(model, p: ModelParams, facts: dict[str, float], inputs: torch.Tensor) -> dict[str, float]:
    """The size facts (param_count, d_model, deviation from target_params), the inference
    state of one sequence after seq_len tokens (KV cache for attention, constant-size state
    for RNNs and SSMs) in bytes, and for a model with MoE layers the routing of one forward
    over the case's batch (impls.ffn.moe.routing_summary)."""
    from impls.mixers.state import state_bytes

    routing: dict[str, float] = {}
    with torch.no_grad():
        if any(isinstance(m, MoE) for m in model.modules()):
            model(inputs)
            routing = routing_summary(model)
        _, state = model.prefill(inputs[:1], model.init_state(1, p.seq_len))
    return {**facts, "state_bytes_per_seq": float(state_bytes(state)), **routing}


def check(model, inputs: torch.Tensor, precision: str) -> dict[str, float]:
    """forward() vs prefill(first half) + step(rest) on batch row 0, first CHECK_TOKENS tokens."""
    was_training = model.training
    model.eval()
    tokens = inputs[:1, :CHECK_TOKENS]
    half = max(1, tokens.shape[1] // 2)
    with torch.no_grad():
        full = model(tokens).double()
        state = model.init_state(1, tokens.shape[1])
        first, state = model.prefill(tokens[:, :half], state)
        rest = []
        for t in range(half, tokens.shape[1]):
            logits, state = model.step(tokens[:, t], state)
            rest.append(logits[:, None])
        incremental = torch.cat([first, *rest], dim=1).double()
    model.train(was_training)
    diff = float((full - incremental).abs().max())
    scale = float(full.abs().max()) or 1.0
    finite = bool(torch.isfinite(incremental).all())
    rel = diff / scale if finite else float("inf")
    return {"max_abs_err": diff, "rel_err": rel, "tolerance": CHECK_TOLERANCE[precision],
            "within_tolerance": float(rel <= CHECK_TOLERANCE[precision])}
