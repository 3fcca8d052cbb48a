"""The channel sizes the Evoformer ops are built with."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvoformerDims:
    """Channels of one Evoformer block (AlphaFold 2 uses c_m=256, c_z=128, 8 heads of 32
    for MSA attention, 4 of 32 for triangle attention, and hidden 32 in the outer-product
    mean and 128 in the triangle multiplications; one `hidden` serves both here)."""

    c_m: int = 256  # MSA channels
    c_z: int = 128  # pair channels
    heads: int = 8
    head_dim: int = 32  # c in Algorithms 7, 8, 13, 14
    hidden: int = 32  # c in Algorithms 10, 11, 12
