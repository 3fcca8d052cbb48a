"""The `classify` workload: a sequence classifier (family "encoder"), forward or one training step.

The model LRA's efficiency table times (impls/models/encoder.py): a bidirectional encoder
over bytes with a classification head, one training step = forward, cross-entropy on
random labels, backward, one AdamW step. Every attention impl runs in every layer
(`attention`, `attention_params` on the impl entry), non-causal.

`weights: int8_dynamic` runs every linear layer as int8 activations x int8 weights
(impls.decoding.int8_dynamic: the CPU's quantized engine, torch._int_mm on CUDA), forward
only; the record names the kernel path that ran (`int8_kernel`).

Correctness: the model's logits against the same weights in float64 with the attention
impl's own reference (exact attention for an exact impl, its masked or projected
specification for an approximate one), on the first CHECK_TOKENS tokens; the int8 model
against the float64 float model, at INT8_TOLERANCE.
"""
from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from harness.workloads.model import _forward
from impls import registry
from impls.decoding import int8_dynamic
from impls.models.encoder import EncoderConfig, with_attention
from impls.models.lm import param_count
from impls.precision import FLOAT_DTYPES, LOGITS_TOLERANCE
from impls.registry import Impl

CHECK_TOKENS = 512  # a multiple of the block-sparse impls' blocks (64) and of LRA's local block (50 is not needed)
INT8_TOLERANCE = 0.15  # W8A8 per-tensor activations: a few percent of the logits' range


class ClassifyParams(CommonParams):
    d_model: int = Field(256, ge=1)
    n_layers: int = Field(4, ge=1)
    vocab_size: int = Field(256, ge=2)
    batch: int = Field(1, ge=1)
    seq_len: int = Field(1024, ge=1)
    direction: Literal["fwd", "train_step"] = "train_step"
    weights: Literal["float", "int8_dynamic"] = "float"


@register_workload
class Classify(Workload):
    name = "classify"
    families = {"encoder": ClassifyParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: ClassifyParams = case.typed
        config = _config(case, impl, p)
        torch.manual_seed(p.seed)
        model = config.build().to(case.device).to(FLOAT_DTYPES[p.precision])
        gen = torch.Generator().manual_seed(p.seed)
        tokens = torch.randint(0, p.vocab_size, (p.batch, p.seq_len), generator=gen).to(case.device)
        labels = torch.randint(0, config.num_classes, (p.batch,), generator=gen).to(case.device)
        float_model = model
        if p.weights == "int8_dynamic":
            model = _int8(copy.deepcopy(model).eval(), p, case.device)
        run = _train_step(model, tokens, labels) if p.direction == "train_step" else _forward(model, tokens)
        stats = {"param_count": float(param_count(float_model)),
                 "state_bytes": float(_state_bytes(float_model, p.direction))}
        return Prepared(run=run, check=lambda: check(model, float_model, tokens, p),
                        work={"tokens": float(p.batch * p.seq_len)},
                        stats=lambda: stats | _kernel(model, p))


def _config(case: Case, impl: Impl, p: ClassifyParams) -> EncoderConfig:
    try:
        config = impl.fn(**{**impl.params, **case.impl_kwargs()}, vocab_size=p.vocab_size, d_model=p.d_model,
                         n_layers=p.n_layers, max_seq_len=p.seq_len)
    except ValueError as why:
        raise Skip(str(why)) from None
    if p.precision not in FLOAT_DTYPES:
        raise Skip(f"the classify workload runs float precisions (int8 is weights: int8_dynamic), not {p.precision}")
    if p.weights == "int8_dynamic" and (p.direction != "fwd" or p.precision != "fp32"):
        raise Skip("int8_dynamic runs inference (direction fwd) from fp32 weights")
    attention = registry.get("attention", config.attention)
    ok, reason = registry.available(attention, case.device, p.precision)
    if not ok:
        raise Skip(reason)
    reason = registry.refusal(attention, **config.attention_params, causal=False, seq_len=p.seq_len,
                              kv_len=p.seq_len, heads=config.heads, kv_heads=config.heads,
                              head_dim=config.d_model // config.heads, device=case.device,
                              direction="fwd_bwd" if p.direction == "train_step" else "fwd")
    if reason:
        raise Skip(reason)
    if p.direction == "train_step" and not attention.backward:
        raise Skip(f"attention {config.attention} has no backward pass")
    return config


def _int8(model: torch.nn.Module, p: ClassifyParams, device: str) -> torch.nn.Module:
    try:
        return int8_dynamic.quantize(model, device)
    except NotImplementedError as why:
        raise Skip(str(why)) from None


def _train_step(model, tokens, labels):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens).float(), labels)
        loss.backward()
        optimizer.step()

    return run


def _state_bytes(model: torch.nn.Module, direction: str) -> int:
    """What the step keeps besides activations: weights, and for training their gradients
    and AdamW's two moments (four copies)."""
    weights = sum(t.numel() * t.element_size() for t in model.parameters())
    return weights * (4 if direction == "train_step" else 1)


def _kernel(model: torch.nn.Module, p: ClassifyParams) -> dict:
    return {"int8_kernel": int8_dynamic.kernel_path(model)} if p.weights == "int8_dynamic" else {}


@torch.no_grad()
def check(model, float_model, tokens: torch.Tensor, p: ClassifyParams) -> dict[str, float]:
    """Logits on the first CHECK_TOKENS tokens against the float64 model with the
    attention impl's reference."""
    was_training = model.training
    model.eval()
    head = tokens[:, :min(p.seq_len, CHECK_TOKENS)]
    reference = _reference_model(float_model)
    expected = reference(head.cpu()).to(torch.float64)
    got = model(head).double().cpu()
    model.train(was_training)
    scale = float(expected.abs().max()) or 1.0
    rel = float((got - expected).abs().max()) / scale if torch.isfinite(got).all() else float("inf")
    tolerance = INT8_TOLERANCE if p.weights == "int8_dynamic" else LOGITS_TOLERANCE[p.precision]
    return {"rel_err": rel, "tolerance": tolerance, "within_tolerance": float(rel <= tolerance)}


def _reference_model(model: torch.nn.Module) -> torch.nn.Module:
    """`model`'s weights in float64 on the CPU, its attention replaced by the impl's reference."""
    config = model.config
    impl = registry.get("attention", config.attention)
    own = registry.get("attention", impl.reference or "reference")
    params = {k: v for k, v in config.attention_params.items() if k in own.params}
    reference = with_attention(config, own.name, params).build()
    reference.load_state_dict(copy.deepcopy(model.state_dict()))
    return reference.double().eval()
