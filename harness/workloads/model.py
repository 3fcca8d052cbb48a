"""The `model` workload: a whole decoder-only LM, forward or one training step.

The impl is a model preset (family "model"); its own params (heads,
positional, norm, experts...) come from the suite. With `target_params` the
workload picks d_model so that every architecture has about that many
parameters (the record states the actual count).

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
from impls import models
from impls.precision import FLOAT_DTYPES
from impls.registry import Impl

CHECK_TOKENS = 32  # length of the forward-vs-incremental slice
CHECK_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}  # max |diff| / max |logits|


class ModelSize(CommonParams):
    """How big a model is: d_model directly, or chosen to match target_params."""

    d_model: int = Field(128, ge=1)
    target_params: int | None = Field(None, ge=1)  # overrides d_model: the closest multiple of 8
    n_layers: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)


class ModelParams(ModelSize):
    batch: int = Field(8, ge=1)
    seq_len: int = Field(256, ge=1)
    direction: Literal["fwd", "train_step"] = "fwd"


def build_model(case: Case, size: ModelSize, vocab_size: int, max_seq_len: int) -> torch.nn.Module:
    """The case's preset at `size`, seeded, on the case's device, in fp32."""
    kwargs: dict[str, Any] = dict(vocab_size=vocab_size, n_layers=size.n_layers, max_seq_len=max_seq_len,
                                  **case.impl_kwargs())
    d_model = size.d_model
    if size.target_params:
        d_model, _ = models.matched(case.impl, size.target_params, family="model", **kwargs)
    torch.manual_seed(size.seed)
    return models.build(case.impl, "model", d_model=d_model, **kwargs).to(case.device)


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
        p = ModelParams(**{k: v for k, v in case.params.items() if k in ModelParams.model_fields})
        if p.precision not in FLOAT_DTYPES:
            raise Skip(f"the model workload runs float precisions only, not {p.precision}")
        model = build_model(case, p, p.vocab_size, p.seq_len).to(FLOAT_DTYPES[p.precision])
        gen = torch.Generator().manual_seed(p.seed)
        tokens = torch.randint(0, p.vocab_size, (p.batch, p.seq_len + 1), generator=gen).to(case.device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        run = _train_step(model, inputs, targets) if p.direction == "train_step" else _forward(model, inputs)
        count = param_count(model)
        return Prepared(run=run, check=lambda: check(model, inputs, p.precision), work=_work(model, p, count),
                        stats=lambda: _stats(model, p, count, inputs))


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


def _stats(model, p: ModelParams, count: int, inputs: torch.Tensor) -> dict[str, float]:
    """Parameter count, d_model, and the inference state of one sequence after seq_len tokens
    (KV cache for attention, constant-size state for RNNs and SSMs), in bytes."""
    from impls.mixers.state import state_bytes

    with torch.no_grad():
        _, state = model.prefill(inputs[:1], model.init_state(1, p.seq_len))
    return {"param_count": float(count), "d_model": float(model.config.d_model),
            "state_bytes_per_seq": float(state_bytes(state))}


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
