"""flash-attn is optional: its impl loads without it and says why it cannot run."""
from __future__ import annotations

import sys

import pytest

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
