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

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.quality import corpus, tokenization
from harness.workloads.base import Prepared, Workload, register_workload
from harness.workloads.builder import ModelSize, build_sized
from impls.ffn.moe import MoE, routing_summary
from impls.precision import FLOAT_DTYPES, LOGITS_TOLERANCE
from impls.registry import Impl

CHECK_TOKENS = 32  # length of the forward-vs-incremental slice


class ModelParams(ModelSize):
    batch: int = Field(8, ge=1)
    seq_len: int = Field(256, ge=1)
    direction: Literal["fwd", "train_step"] = "fwd"
    # None: random tokens over vocab_size; char | bpe-<V>: windows of the corpus in that
    # tokenizer's ids, its vocabulary, and `chars` per call (so chars_per_s beside tokens_per_s)
    tokenizer: str | None = Field(None, pattern=tokenization.TOKENIZER_PATTERN)


@register_workload
class Model(Workload):
    name = "model"
    families = {"model": ModelParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: ModelParams = case.typed
        if p.precision not in FLOAT_DTYPES:
            raise Skip(f"the model workload runs float precisions only, not {p.precision}")
        text = _tokenized_corpus(case, p, impl)
        model, facts = build_sized(case, p, text.vocab_size if text else p.vocab_size, p.seq_len,
                                   backward=p.direction == "train_step")
        model = model.to(FLOAT_DTYPES[p.precision])
        gen = torch.Generator().manual_seed(p.seed)
        if text:
            inputs, targets = (t.to(case.device) for t in corpus.random_windows(text.train.ids, p.batch, p.seq_len, gen))
        else:  # the model's own vocabulary: a checkpoint's, or the suite's vocab_size
            tokens = torch.randint(0, model.config.vocab_size, (p.batch, p.seq_len + 1), generator=gen).to(case.device)
            inputs, targets = tokens[:, :-1], tokens[:, 1:]
        run = _train_step(model, inputs, targets) if p.direction == "train_step" else _forward(model, inputs)
        work = _work(model, p, int(facts["param_count"]))
        if text:
            work["chars"] = work["tokens"] * text.chars_per_token
        return Prepared(run=run, check=lambda: check(model, inputs, p.precision),
                        work=work, stats=lambda: _stats(model, p, facts, inputs))


def _tokenized_corpus(case: Case, p: ModelParams, impl: Impl) -> tokenization.TokenizedCorpus | None:
    if not p.tokenizer:
        return None
    if impl.fixed_size:
        raise Skip(f"{case.impl} has its checkpoint's own vocabulary; tokenizer={p.tokenizer} does not apply")
    return tokenization.load(p.tokenizer)


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
    return {"max_abs_err": diff, "rel_err": rel, "tolerance": LOGITS_TOLERANCE[precision],
            "within_tolerance": float(rel <= LOGITS_TOLERANCE[precision])}
