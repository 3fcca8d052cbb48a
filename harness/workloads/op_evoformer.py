"""An Evoformer op (impls/evoformer) as a single op: random m and z; forward or forward+backward.

The op is built from the case's channel sizes with weights drawn from the case's
seed, so an op and its chunked variant hold the same numbers. The check runs
before timing against the float64 specification (impls/evoformer/reference.py)
on the case itself, or on fewer sequences and residues when the float64 pair
tensors would be too large (`check_residues`, `check_msa_depth`). A chunked
impl is also compared with the whole op at its own precision
(`unchunked_max_abs_err`): chunking reorders no sum, so in fp32 the two agree to
rounding.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.workloads.base import CommonParams, Prepared
from harness.workloads.op import OpFamily, register_op_family
from harness.workloads.op_attention import _errors
from impls.evoformer.dims import EvoformerDims
from impls.evoformer.reference import reference_for
from impls.precision import FLOAT_DTYPES
from impls.registry import Impl

# Relative error (max |out - ref| / max |ref|) allowed per precision: a LayerNorm, two
# projections and a softmax or a sum over residues between input and output
OUTPUT_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}
GRAD_TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2, "bf16": 1e-1}
CHECK_MAX_RESIDUES = 64  # the float64 check's (N_res, N_res, c*c) and (N_res^3) terms stay small
CHECK_MAX_MSA_DEPTH = 64


class EvoformerParams(CommonParams):
    msa_depth: int = Field(32, ge=1)  # N_seq
    residues: int = Field(64, ge=1)  # N_res
    c_m: int = Field(64, ge=1)
    c_z: int = Field(32, ge=1)
    heads: int = Field(4, ge=1)
    head_dim: int = Field(16, ge=1)
    hidden: int = Field(16, ge=1)
    direction: Literal["fwd", "fwd_bwd"] = "fwd"

    def dims(self) -> EvoformerDims:
        return EvoformerDims(c_m=self.c_m, c_z=self.c_z, heads=self.heads, head_dim=self.head_dim,
                             hidden=self.hidden)


@register_op_family
class EvoformerOp(OpFamily):
    family = "evoformer"
    Params = EvoformerParams

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: EvoformerParams = case.typed
        if p.precision not in OUTPUT_TOLERANCE:
            raise Skip(f"{impl.name} runs in floating point only, not {p.precision}")
        op = build(impl, case, p)
        backward = p.direction == "fwd_bwd"
        m, z = make_inputs(impl, p, case.device, requires_grad=backward)
        if backward:
            wrt = [t for t in (m, z) if t is not None] + list(op.parameters())

            def run():
                out = op(m, z)
                return torch.autograd.grad(out, wrt, torch.ones_like(out))
        else:
            def run():
                with torch.no_grad():
                    return op(m, z)

        params = p.model_dump()
        work = {"flops": impl.flops(params) * (3 if backward else 1)} if impl.flops else {}
        return Prepared(run=run, check=lambda: check(impl, case, p), work=work)


def build(impl: Impl, case: Case, p: EvoformerParams) -> torch.nn.Module:
    """The op with weights from the case's seed, at the case's precision and device."""
    kwargs = {**impl.params, **case.impl_kwargs()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.seed)
        op = impl.fn(p.dims(), **kwargs)
    return op.to(device=case.device, dtype=FLOAT_DTYPES[p.precision])


def make_inputs(impl: Impl, p: EvoformerParams, device: str, requires_grad: bool = False,
                dtype: torch.dtype | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Seeded standard-normal m (N_seq, N_res, c_m) and z (N_res, N_res, c_z); None for
    the one the op does not read."""
    dtype = dtype or FLOAT_DTYPES[p.precision]
    gen = torch.Generator(device=device).manual_seed(p.seed + 1)
    shapes = {"m": (p.msa_depth, p.residues, p.c_m), "z": (p.residues, p.residues, p.c_z)}
    return tuple(torch.randn(shapes[name], generator=gen, device=device, dtype=dtype).requires_grad_(requires_grad)
                 if name in impl.reads else None for name in ("m", "z"))


def check(impl: Impl, case: Case, p: EvoformerParams) -> dict[str, float]:
    """Errors of the op against its float64 specification (and, chunked, against the whole op)."""
    small = p.model_copy(update={"residues": min(p.residues, CHECK_MAX_RESIDUES),
                                 "msa_depth": min(p.msa_depth, CHECK_MAX_MSA_DEPTH)})
    backward = p.direction == "fwd_bwd"
    op = build(impl, case, small)
    m, z = make_inputs(impl, small, case.device, requires_grad=backward)
    out = op(m, z)
    inputs64 = [None if t is None else t.detach().double().requires_grad_(backward) for t in (m, z)]
    expected = reference_for(impl.name)(op, *inputs64)
    result = _errors(out, expected, OUTPUT_TOLERANCE[p.precision])
    result["check_residues"], result["check_msa_depth"] = float(small.residues), float(small.msa_depth)
    if impl.reference:  # the chunked form against the whole op, same weights and precision
        whole = op.__class__(small.dims()).to(device=case.device, dtype=out.dtype)
        whole.load_state_dict(op.state_dict())
        with torch.no_grad():
            result["unchunked_max_abs_err"] = float((whole(m, z) - out).abs().max())
    if backward:
        grad_out = torch.randn_like(out)
        out.backward(grad_out)
        expected.backward(grad_out.double())
        grad_err = max(_errors(t.grad, t64.grad, 0)["rel_err"]
                       for t, t64 in zip((m, z), inputs64) if t is not None)
        result["grad_rel_err"] = grad_err
        result["within_tolerance"] = float(result["within_tolerance"] and grad_err <= GRAD_TOLERANCE[p.precision])
    return result
