"""int8 attention: exact up to the int8 rounding of q and k, and that rounding is small."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.attention import cost
from impls.attention.int8 import int8_attention, int8_reference, int_matmul_t, quantize_rows
from impls.attention.reference import attention_fp64

from tests.conftest import max_rel_err, random_qkv

SHAPES = [  # (B, Hq, Hkv, N, M, D, causal)
    (1, 2, 2, 17, 17, 32, False),
    (2, 4, 2, 33, 40, 64, True),  # grouped heads, M > N, causal aligned bottom-right
    (1, 2, 1, 1, 5, 20, True),  # D not a multiple of 8: padded for _int_mm
    (1, 3, 1, 9, 23, 32, False),
    (3, 2, 2, 19, 19, 128, True),  # batch 3, D=128
    (3, 4, 1, 1, 30, 128, False),  # batch 3, MQA, one query, D=128
]


def test_int_matmul_is_exact_integer_arithmetic():
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(-127, 128, (3, 37), generator=gen, dtype=torch.int8)  # padded to (17, 40)
    b = torch.randint(-127, 128, (7, 37), generator=gen, dtype=torch.int8)
    assert torch.equal(int_matmul_t(a, b), a.long().mm(b.long().t()).int())


def test_quantize_rows_uses_full_range_and_bounded_rounding_error():
    x = random_qkv(1, 2, 2, 11, 11, 32)[0]
    values, scales = quantize_rows(x)
    assert values.dtype == torch.int8
    assert torch.equal(values.abs().amax(-1), torch.full((1, 2, 11), 127, dtype=torch.int8))
    assert ((values.float() * scales - x).abs() <= scales / 2 + 1e-6).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_int8_matches_its_dequantized_reference_tightly(shape):
    *dims, causal = shape
    q, k, v = random_qkv(*dims)
    out = int8_attention(q, k, v, causal=causal)
    expected = int8_reference(q.double(), k.double(), v.double(), causal=causal)
    assert out.dtype == torch.float32
    assert max_rel_err(out, expected) < 1e-5


@pytest.mark.parametrize("shape", SHAPES)
def test_int8_error_against_exact_attention_is_small_but_not_zero(shape):
    *dims, causal = shape
    q, k, v = random_qkv(*dims, seed=3)
    err = max_rel_err(int8_attention(q, k, v, causal=causal), attention_fp64(q, k, v, causal=causal))
    assert 1e-5 < err < 5e-2  # the quantisation shows, and stays small


def test_int8_is_registered_as_approximate_with_its_reference():
    impl = registry.get("attention", "int8")
    assert (impl.exact, impl.reference, impl.backward) == (False, "int8_reference", False)
    assert registry.available(impl, "cpu", "int8") == (True, "")
    assert not registry.available(impl, "cpu", "fp16")[0]
    assert impl.peak_bytes({"batch": 1, "heads": 2, "seq_len": 64, "head_dim": 32}) > 2 * 2 * 64 * 64 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("shape", SHAPES)
def test_int8_on_cuda_matches_its_reference(shape):
    """On a GPU the inputs are fp16 and P V runs in fp16: looser, still far below the int8 error."""
    *dims, causal = shape
    q, k, v = [t.cuda().half() for t in random_qkv(*dims)]
    out = int8_attention(q, k, v, causal=causal)
    expected = int8_reference(q.double(), k.double(), v.double(), causal=causal)
    assert out.dtype == torch.float16
    assert max_rel_err(out, expected) < 5e-3


@pytest.mark.parametrize("device, elem", [("cpu", 4), ("cuda", 2)])
def test_int8_bytes_count_the_dtype_its_inputs_really_have(device, elem):
    """q, k, v and o of an int8 case are fp32 on the CPU and fp16 on a GPU (the impl
    quantises inside), so GB/s counts them at that size, not at one byte."""
    params = {"batch": 2, "heads": 4, "seq_len": 64, "head_dim": 32, "precision": "int8", "device": device}
    impl = registry.get("attention", "int8")
    elements = 4 * 2 * 4 * 64 * 32  # q, k, v, o
    assert impl.bytes_moved(params) == elements * elem
    assert cost.element_bytes(params) == elem
