"""flash-attn is optional: its impl loads without it and says why it cannot run."""
from __future__ import annotations

import sys

import pytest
import torch

from impls import registry
from impls.requirements import _importable


@pytest.mark.skipif(_importable("flash_attn"), reason="flash-attn is installed here")
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_flash_attn_unavailable_without_the_library(device):
    impl = registry.get("attention", "flash_attn")
    assert registry.available(impl, device, "fp16") == (False, "flash-attn is not installed")


def test_loading_every_impl_does_not_import_flash_attn():
    registry.load_all()  # would raise ModuleNotFoundError here if the module imported it eagerly
    assert "impls.attention.flash_attn_lib" in sys.modules
    assert "flash_attn" not in sys.modules


def test_flash_attn_declares_half_precisions_only():
    impl = registry.get("attention", "flash_attn")
    assert impl.precisions == {"fp16", "bf16"}
    assert not registry.available(impl, "cuda", "fp32")[0]


@pytest.mark.skipif(not (torch.cuda.is_available() and _importable("flash_attn")), reason="needs flash-attn on a GPU")
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attn_matches_fp64_with_grouped_heads_and_longer_keys(causal):
    from impls.attention.reference import attention_fp64

    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, 4, 33, 64, generator=gen, device="cuda", dtype=torch.float16)
    k, v = [torch.randn(2, 2, 50, 64, generator=gen, device="cuda", dtype=torch.float16) for _ in range(2)]
    out = registry.get("attention", "flash_attn").fn(q, k, v, causal=causal)
    expected = attention_fp64(q, k, v, causal=causal)
    assert float((out.double() - expected).abs().max() / expected.abs().max()) < 5e-3
