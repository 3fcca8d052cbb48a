"""The Evoformer ops (impls/evoformer) against their float64 specification, the chunked
forms against the whole ones, and chunking's memory bound.

Parametrised from the registry, so an op registered later is tested here too.
"""
from __future__ import annotations

import pytest
import torch

from harness.case import Case
from harness.workloads.op_evoformer import GRAD_TOLERANCE, OUTPUT_TOLERANCE, EvoformerOp
from impls import registry
from impls.evoformer.chunking import chunk_apply
from impls.evoformer.dims import EvoformerDims
from impls.evoformer.reference import REFERENCES, reference_for
from tests.test_attention_peak import allocated_peak

NAMES = registry.names("evoformer")
WHOLE = [n for n in NAMES if not n.endswith("_chunked")]
DIMS = EvoformerDims(c_m=24, c_z=16, heads=3, head_dim=8, hidden=12)
SHAPES = [(1, 1), (3, 5), (8, 17), (5, 33)]  # (msa_depth, residues): single row, odd, past a chunk


def _inputs(shape: tuple[int, int], seed: int, dims: EvoformerDims = DIMS, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    seqs, res = shape
    return (torch.randn(seqs, res, dims.c_m, generator=gen, dtype=dtype),
            torch.randn(res, res, dims.c_z, generator=gen, dtype=dtype))


def _build(name: str, seed: int, chunk_size: int | None = None, dims: EvoformerDims = DIMS):
    torch.manual_seed(seed)
    impl = registry.get("evoformer", name)
    kwargs = {"chunk_size": chunk_size} if "chunk_size" in impl.params else {}
    return impl.fn(dims, **kwargs)


def _rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    """max |out - expected| over max |expected|; the absolute error where expected is all zero
    (one residue: softmax over one key passes no gradient to its bias)."""
    out, expected = out.detach().double(), expected.detach()
    error, scale = float((out - expected).abs().max()), float(expected.abs().max())
    return error / scale if scale > 0 else error


def test_every_op_of_the_supplement_is_registered_whole_and_chunked():
    assert set(WHOLE) == set(REFERENCES)
    assert set(NAMES) == set(WHOLE) | {f"{n}_chunked" for n in WHOLE}
    for name in NAMES:
        impl = registry.get("evoformer", name)
        assert impl.algorithm in (7, 8, 10, 11, 12, 13, 14)
        assert impl.reference == (name.removesuffix("_chunked") if name.endswith("_chunked") else None)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"seqs{s[0]}-res{s[1]}")
@pytest.mark.parametrize("name", NAMES)
def test_op_matches_its_float64_specification_forward_and_backward(name, shape):
    op = _build(name, seed=1, chunk_size=4)
    m, z = (t.requires_grad_() for t in _inputs(shape, seed=2))
    m64, z64 = (t.detach().double().requires_grad_() for t in (m, z))
    out, expected = op(m, z), reference_for(name)(op, m64, z64)
    assert out.shape == expected.shape
    assert _rel_err(out, expected) <= OUTPUT_TOLERANCE["fp32"]
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    out.backward(grad_out)
    expected.backward(grad_out.double())
    reads = registry.get("evoformer", name).reads
    for given, given64, label in ((m, m64, "m"), (z, z64, "z")):
        if label in reads:
            assert _rel_err(given.grad, given64.grad) <= GRAD_TOLERANCE["fp32"], label
        else:
            assert given.grad is None, f"{name} reads {label}, which it does not declare"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", NAMES)
def test_op_in_half_precision_is_within_its_tolerance_through_the_workload_check(name, precision):
    impl = registry.get("evoformer", name)
    params = {"msa_depth": 6, "residues": 21, "c_m": 32, "c_z": 16, "heads": 2, "head_dim": 8, "hidden": 8,
              "precision": precision, "direction": "fwd_bwd", "seed": 4, "chunk_size": 8}
    case = Case(suite="t", workload="op", family="evoformer", impl=name, label=name, params=params,
                impl_params=tuple(k for k in params if k in impl.params), axes=(), device="cpu")
    result = EvoformerOp().prepare(case, impl).check()
    assert result["within_tolerance"] == 1.0, result
    assert result["rel_err"] > 0  # the case ran in its precision, not in fp32


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 40])
@pytest.mark.parametrize("name", WHOLE)
def test_chunked_equals_whole_op_when_chunks_do_not_divide_the_axis(name, chunk_size):
    whole = _build(name, seed=5)
    chunked = _build(f"{name}_chunked", seed=6, chunk_size=chunk_size)
    chunked.load_state_dict(whole.state_dict())
    m, z = _inputs((7, 19), seed=7)
    with torch.no_grad():
        torch.testing.assert_close(chunked(m, z), whole(m, z), rtol=1e-5, atol=1e-6)


def test_ending_node_is_not_the_starting_node_on_asymmetric_edges():
    # the two triangle attentions (and multiplications) differ only by a transpose: a
    # specification that mixed them up would pass every test above for both
    m, z = _inputs((2, 9), seed=8)
    for pair in (("triangle_attention_starting", "triangle_attention_ending"),
                 ("triangle_mult_outgoing", "triangle_mult_incoming")):
        op = _build(pair[0], seed=9)
        with torch.no_grad():
            assert _rel_err(op(m, z), REFERENCES[pair[1]](op, m.double(), z.double())) > 1e-2


@pytest.mark.parametrize("name", WHOLE)
def test_chunking_lowers_the_peak_allocation_of_a_forward_call(name):
    dims = EvoformerDims(c_m=64, c_z=32, heads=4, head_dim=16, hidden=16)
    whole = _build(name, seed=10, dims=dims)
    chunked = _build(f"{name}_chunked", seed=10, chunk_size=16, dims=dims)
    m, z = _inputs((64, 64), seed=11, dims=dims)
    with torch.no_grad():
        whole_peak = allocated_peak(lambda: whole(m, z))
        chunked_peak = allocated_peak(lambda: chunked(m, z))
    # measured 0.31-0.64 of the whole op's peak at this shape (the allocator's own count)
    assert chunked_peak < 0.75 * whole_peak


def test_chunk_apply_refuses_an_empty_chunk():
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        chunk_apply(lambda x: x, [torch.ones(4, 2)], dim=0, chunk_size=0)
