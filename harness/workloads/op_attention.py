"""Attention as a single op: random q, k, v; forward or forward+backward.

Correctness is checked before timing on a slice of the case (batch 0, one KV
group, and a shorter sequence when the fp64 reference would be too costly),
against the impl's reference in float64 (`max_abs_err`, `rel_err`). Approximate
impls are also measured against exact attention (`exact_max_abs_err`,
`exact_rel_err`), so quality can sit next to speed.

Forward+backward runs take the gradients with torch.autograd.grad and drop them
at the end of the call, so the measured peak of a call counts them, as the
impls' peak_bytes models do.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.workloads.base import CommonParams, Prepared
from harness.workloads.op import OpFamily, register_op_family
from impls import registry
from impls.attention import cost
from impls.precision import ATTENTION_GRAD_TOLERANCE, ATTENTION_TOLERANCE, input_dtype
from impls.registry import Impl

CHECK_MAX_PAIRS = 1 << 22  # (query, key) pairs x heads in the fp64 check, ~0.1 s on a laptop core


class AttentionParams(CommonParams):
    batch: int = Field(1, ge=1)
    heads: int = Field(8, ge=1)
    kv_heads: int | None = Field(None, ge=1)  # None: as many as query heads (MHA)
    seq_len: int = Field(512, ge=1)
    kv_len: int | None = Field(None, ge=1)  # None: self-attention (kv_len = seq_len)
    head_dim: int = Field(64, ge=1)
    causal: bool = False
    direction: Literal["fwd", "fwd_bwd"] = "fwd"


@register_op_family
class AttentionOp(OpFamily):
    family = "attention"
    Params = AttentionParams

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: AttentionParams = case.typed
        _reject_impossible(p, impl, case.device, case.impl_kwargs())
        backward = p.direction == "fwd_bwd"
        q, k, v = make_qkv(p, case.device, requires_grad=backward)
        call = _caller(impl, case, p)
        if backward:
            grad_out = torch.randn_like(q)

            def run():
                return torch.autograd.grad(call(q, k, v), (q, k, v), grad_out)
        else:
            def run():
                with torch.no_grad():
                    return call(q, k, v)

        # the validated params carry the defaults a suite may leave out; the device sets the
        # dtype int8 cases take their inputs in, and which path flex takes
        params = case.params | p.model_dump() | {"kv_heads": p.kv_heads or p.heads, "kv_len": p.kv_len or p.seq_len,
                                                 "device": case.device}
        work = {"flops": (impl.flops or cost.flops)(params),
                "bytes_moved": (impl.bytes_moved or cost.bytes_moved)(params)}
        if impl.peak_bytes:
            work["expected_peak_bytes"] = float(impl.peak_bytes(params))
        return Prepared(run=run, check=lambda: check(impl, case, p), work=work)


def _reject_impossible(p: AttentionParams, impl: Impl, device: str, impl_kwargs: dict) -> None:
    kv_heads, kv_len = p.kv_heads or p.heads, p.kv_len or p.seq_len
    if p.heads % kv_heads:
        raise Skip(f"kv_heads={kv_heads} must divide heads={p.heads}")
    if p.causal and kv_len < p.seq_len:
        raise Skip(f"causal attention needs kv_len >= seq_len (got {kv_len} < {p.seq_len})")
    if p.direction == "fwd_bwd" and not impl.backward:
        raise Skip(f"{impl.name} has no backward pass")
    reason = registry.refusal(impl, **(p.model_dump() | impl_kwargs | {"kv_len": kv_len, "device": device}))
    if reason:
        raise Skip(reason)


def make_qkv(p: AttentionParams, device: str, requires_grad: bool = False, dtype=None):
    """Seeded standard-normal q (B, Hq, N, D), k and v (B, Hkv, M, D)."""
    dtype = dtype or input_dtype(p.precision, device)
    gen = torch.Generator(device=device).manual_seed(p.seed)
    kv_shape = (p.batch, p.kv_heads or p.heads, p.kv_len or p.seq_len, p.head_dim)
    shapes = [(p.batch, p.heads, p.seq_len, p.head_dim), kv_shape, kv_shape]
    return [torch.randn(s, generator=gen, device=device, dtype=dtype).requires_grad_(requires_grad)
            for s in shapes]


def _caller(impl: Impl, case: Case, p: AttentionParams):
    kwargs = case.impl_kwargs()
    return lambda q, k, v: impl.fn(q, k, v, causal=p.causal, **kwargs)


def check_shape(p: AttentionParams) -> AttentionParams:
    """The case reduced to batch 0 and one KV group, shortened to fit CHECK_MAX_PAIRS."""
    kv_heads = p.kv_heads or p.heads
    group = p.heads // kv_heads
    n, m = p.seq_len, p.kv_len or p.seq_len
    while n * m * group > CHECK_MAX_PAIRS and n > 1:
        n, m = max(1, n // 2), max(1, m // 2)
    return p.model_copy(update={"batch": 1, "heads": group, "kv_heads": 1, "seq_len": n,
                                "kv_len": m if p.kv_len else None})


def check(impl: Impl, case: Case, p: AttentionParams) -> dict[str, float]:
    """Errors of `impl` against its reference (and against exact attention), fp64."""
    small = check_shape(p)
    backward = p.direction == "fwd_bwd"
    q, k, v = make_qkv(small, case.device, requires_grad=backward)
    # dropout draws its own mask: the check runs without it, on the same code path otherwise
    kwargs = case.impl_kwargs() | ({"dropout_p": 0.0} if "dropout_p" in impl.params else {})
    out = impl.fn(q, k, v, causal=p.causal, **kwargs)
    exact = registry.get("attention", "reference")
    own = registry.get("attention", impl.reference) if impl.reference else exact
    # the impl's defaults too: its reference must see the params the impl ran with
    own_kwargs = {k: v for k, v in {**impl.params, **case.impl_kwargs()}.items() if k in own.params}
    inputs64 = [t.detach().double().requires_grad_(backward) for t in (q, k, v)]
    expected = own.fn(*inputs64, causal=p.causal, **own_kwargs)
    result = _errors(out, expected, ATTENTION_TOLERANCE[p.precision])
    result["check_seq_len"] = float(small.seq_len)
    if own is not exact:
        exact_out = exact.fn(*[t.detach() for t in inputs64], causal=p.causal)
        errors = _errors(out, exact_out, 0)
        result["exact_max_abs_err"], result["exact_rel_err"] = errors["max_abs_err"], errors["rel_err"]
    if backward:
        grad_out = torch.randn_like(out)
        out.backward(grad_out)
        expected.backward(grad_out.double())
        grad_err = max(_errors(t.grad, t64.grad, 0)["rel_err"] for t, t64 in zip((q, k, v), inputs64))
        result["grad_rel_err"], result["grad_tolerance"] = grad_err, ATTENTION_GRAD_TOLERANCE[p.precision]
        result["within_tolerance"] = float(result["within_tolerance"] and grad_err <= ATTENTION_GRAD_TOLERANCE[p.precision])
    return result


def _errors(out: torch.Tensor, expected: torch.Tensor, tolerance: float) -> dict[str, float]:
    diff = (out.detach().double() - expected.detach()).abs()
    if not torch.isfinite(out).all():
        return {"max_abs_err": float("inf"), "rel_err": float("inf"), "tolerance": tolerance,
                "within_tolerance": 0.0}
    max_abs = float(diff.max()) if diff.numel() else 0.0
    scale = float(expected.detach().abs().max()) if expected.numel() else 1.0
    rel = max_abs / scale if scale > 0 else max_abs
    return {"max_abs_err": max_abs, "rel_err": rel, "tolerance": tolerance,
            "within_tolerance": float(rel <= tolerance)}
