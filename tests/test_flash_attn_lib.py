"""flash-attn is optional: its impls (2.x and 1.x) load without it and say why they cannot run."""
from __future__ import annotations

import sys

import pytest
import torch

from impls import registry, requirements
from impls.requirements import _importable

V2_HERE = requirements.version("flash-attn", at_least=(2, 1))("cuda", "fp16") is None
V1_HERE = requirements.version("flash-attn", at_least=(1,), below=(2,))("cuda", "fp16") is None


@pytest.mark.skipif(_importable("flash_attn"), reason="flash-attn is installed here")
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", ["flash_attn", "flash_attn_v1"])
def test_flash_attn_unavailable_without_the_library(device, name):
    impl = registry.get("attention", name)
    assert registry.available(impl, device, "fp16") == (False, "flash-attn is not installed")


@pytest.mark.parametrize("installed, v2_reason, v1_reason", [
    ("2.6.3", None, "needs flash-attn >= 1, < 2, found 2.6.3"),
    ("2.0.4", "needs flash-attn >= 2.1, found 2.0.4", "needs flash-attn >= 1, < 2, found 2.0.4"),
    ("1.0.9", "needs flash-attn >= 2.1, found 1.0.9", None),
])
def test_each_flash_attn_impl_names_the_version_it_needs(monkeypatch, installed, v2_reason, v1_reason):
    monkeypatch.setattr(requirements.importlib.metadata, "version", lambda name: installed)
    assert requirements.version("flash-attn", at_least=(2, 1))("cuda", "fp16") == v2_reason
    assert requirements.version("flash-attn", at_least=(1,), below=(2,))("cuda", "fp16") == v1_reason


def test_flash_attn_v1_is_limited_to_self_attention_with_equal_heads():
    supports = registry.get("attention", "flash_attn_v1").supports
    assert supports({"seq_len": 64, "heads": 8}) is None
    assert "grouped heads" in supports({"seq_len": 64, "heads": 8, "kv_heads": 2})
    assert "kv_len == seq_len" in supports({"seq_len": 64, "kv_len": 80, "heads": 8})


def test_loading_every_impl_does_not_import_flash_attn():
    registry.load_all()  # would raise ModuleNotFoundError here if the module imported it eagerly
    assert "impls.attention.flash_attn_lib" in sys.modules
    assert "flash_attn" not in sys.modules


def test_flash_attn_declares_half_precisions_only():
    impl = registry.get("attention", "flash_attn")
    assert impl.precisions == {"fp16", "bf16"}
    assert not registry.available(impl, "cuda", "fp32")[0]


@pytest.mark.skipif(not (torch.cuda.is_available() and V2_HERE), reason="needs flash-attn >= 2.1 on a GPU")
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attn_matches_fp64_with_grouped_heads_and_longer_keys(causal):
    from impls.attention.reference import attention_fp64

    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, 4, 33, 64, generator=gen, device="cuda", dtype=torch.float16)
    k, v = [torch.randn(2, 2, 50, 64, generator=gen, device="cuda", dtype=torch.float16) for _ in range(2)]
    out = registry.get("attention", "flash_attn").fn(q, k, v, causal=causal)
    expected = attention_fp64(q, k, v, causal=causal)
    assert float((out.double() - expected).abs().max() / expected.abs().max()) < 5e-3


@pytest.mark.skipif(not (torch.cuda.is_available() and V1_HERE), reason="needs flash-attn 1.x on a GPU")
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attn_v1_matches_fp64(causal):
    from impls.attention.reference import attention_fp64

    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = [torch.randn(3, 4, 77, 64, generator=gen, device="cuda", dtype=torch.float16) for _ in range(3)]
    out = registry.get("attention", "flash_attn_v1").fn(q, k, v, causal=causal)
    expected = attention_fp64(q, k, v, causal=causal)
    assert float((out.double() - expected).abs().max() / expected.abs().max()) < 5e-3
