"""Linformer attention (Wang et al. 2020): keys and values projected to k rows.

  out = softmax(q (E K)^T * scale) (F V),   E, F: (proj_k, M)

so the scores are N x proj_k and the cost is O(N * proj_k) instead of O(N * M).
In the paper E and F are learned; here, as an untrained op, they are fixed
random Gaussian matrices scaled by 1/sqrt(M) (so a projected key has the scale
of a key), drawn from a torch.Generator seeded with `proj_seed`: the impl and its
reference use identical E and F for the same (M, proj_k, proj_seed). (Not named
`seed`: that is the workload's input seed, which must not move E and F.) They are
parameters, made once per shape and cached, not per-call work.

Not causal: a projected row mixes every position, so no causal mask exists.
Calling it with causal=True raises ValueError; suites that sweep `causal`
exclude it with a constraint (`impl != linformer or not causal`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from impls.attention import cost, masks
from impls.registry import register
from impls.attention.scale import default_scale

PARAMS = {"proj_k": 256, "proj_seed": 0}


@lru_cache(maxsize=4)
def projections(m: int, proj_k: int, seed: int, device: str = "cpu",
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(E, F), each (proj_k, m): drawn in fp32 on the CPU, then moved, so every device and
    dtype sees the same values."""
    if proj_k < 1:
        raise ValueError(f"proj_k must be >= 1, got {proj_k}")
    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(proj_k, m, generator=gen) / math.sqrt(m)
    f = torch.randn(proj_k, m, generator=gen) / math.sqrt(m)
    return e.to(device, dtype), f.to(device, dtype)


def _projected(k, v, proj_k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E K and F V, (B, Hkv, proj_k, D) each."""
    e, f = projections(k.shape[-2], proj_k, seed, str(k.device), k.dtype)
    return e @ k, f @ v


def _require_non_causal(causal: bool) -> None:
    if causal:
        raise ValueError(NOT_CAUSAL + "; run it with causal=false")


NOT_CAUSAL = "linformer has no causal form (each projected key mixes every position)"


def _not_causal(p: dict) -> str | None:
    return NOT_CAUSAL if p.get("causal") else None


@register("attention", "linformer", exact=False, reference="linformer_reference",
          supports=_not_causal, flops=lambda p: _flops(p), bytes_moved=lambda p: _bytes(p),
          peak_bytes=lambda p: _peak(p), params=PARAMS)
def linformer(q, k, v, *, causal: bool, scale: float | None = None, proj_k: int = 256,
              proj_seed: int = 0) -> torch.Tensor:
    """Low-rank attention over proj_k projected keys/values, O(N * proj_k)."""
    _require_non_causal(causal)
    k_proj, v_proj = _projected(k, v, proj_k, proj_seed)
    k_proj, v_proj = masks.repeat_kv(k_proj, q.shape[1]), masks.repeat_kv(v_proj, q.shape[1])
    scale = default_scale(q, scale)
    scores = (q @ k_proj.transpose(-1, -2)).float() * scale  # (B, Hq, N, proj_k)
    return torch.softmax(scores, dim=-1).to(v.dtype) @ v_proj


def _flops(p: dict) -> float:
    """Attention over proj_k keys plus the two projections E K and F V."""
    b, _, hkv, n, m, d = cost.shape(p)
    proj_k = int(p.get("proj_k", PARAMS["proj_k"]))
    projecting = 2 * 2.0 * b * hkv * proj_k * m * d
    if p.get("direction") == "fwd_bwd":
        projecting *= 2  # E and F are fixed, so backward only takes dK = E^T dK', dV = F^T dV'

    return cost.flops(p, pairs=n * proj_k) + projecting


def _bytes(p: dict) -> float:
    """The dense minimum (q, k, v, o) plus reading E and F."""
    _, _, _, _, m, _ = cost.shape(p)
    elem = cost.element_bytes(p)
    return cost.bytes_moved(p) + 2 * int(p.get("proj_k", PARAMS["proj_k"])) * m * elem


def _projected_bytes(p: dict) -> tuple[int, int]:
    """(elements of one fp32 score matrix over the proj_k keys, bytes of E K and F V and
    their per-head copies)."""
    b, hq, hkv, n, _, d = cost.shape(p)
    proj_k = int(p.get("proj_k", PARAMS["proj_k"]))
    copies = b * hq if hq != hkv else 0
    return b * hq * n * proj_k, 2 * (b * hkv + copies) * proj_k * d * cost.element_bytes(p)


def _peak(p: dict) -> float:
    """As naive attention over proj_k keys: forward two fp32 N x proj_k matrices (scores,
    probabilities; plus the 16-bit copy) and the output; forward+backward peaks as the
    gradients of q, k, v form, next to one N x proj_k gradient and the output."""
    s = cost.sizes(p)
    scores, projected = _projected_bytes(p)
    if s.backward:
        return projected + 4 * scores + s.q * s.elem + s.gradients
    return projected + 8 * scores + (2 * scores if s.elem < 4 else s.q * s.elem)


def _reference_peak(p: dict) -> float:
    """fp64 copies of q, k, v, E and F, two fp64 N x proj_k matrices and the output in
    fp64 and in the input dtype (plus the gradients, fwd_bwd)."""
    s = cost.sizes(p)
    scores, _ = _projected_bytes(p)
    proj_k = int(p.get("proj_k", PARAMS["proj_k"]))
    copies = (s.q + 2 * s.kv) * 8 + 2 * proj_k * int(p.get("kv_len") or p["seq_len"]) * 8
    return copies + 16 * scores + s.q * (8 + s.elem) + s.gradients


@register("attention", "linformer_reference", reference="linformer_reference", flops=lambda p: _flops(p),
          bytes_moved=lambda p: _bytes(p), peak_bytes=_reference_peak, supports=_not_causal, params=PARAMS)
def linformer_reference(q, k, v, *, causal: bool, scale: float | None = None, proj_k: int = 256,
                        proj_seed: int = 0) -> torch.Tensor:
    """The same math in float64 (the spec of `linformer`); returns q's dtype."""
    _require_non_causal(causal)
    e, f = (x.to(q.device, torch.float64) for x in projections(k.shape[-2], proj_k, proj_seed))
    q64, k64, v64 = q.double(), k.double(), v.double()
    k_proj = masks.repeat_kv(e @ k64, q.shape[1])
    v_proj = masks.repeat_kv(f @ v64, q.shape[1])
    scale = default_scale(q, scale)
    return (torch.softmax(q64 @ k_proj.transpose(-1, -2) * scale, dim=-1) @ v_proj).to(q.dtype)
