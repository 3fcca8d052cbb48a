"""The Triton kernels' own knobs, for the doctor: triton_flash at each autotune configuration
(pinned one at a time), and the selective scan at each channel block, forward and backward
against its reference."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from harness.doctor.checks import Variant
from impls import registry
from impls.precision import FLOAT_DTYPES


@contextmanager
def pinned(kernels: list[Any], config: Any) -> Iterator[None]:
    """Run `kernels` (triton.autotune'd) at `config` alone: an autotuner with one config
    launches it without benchmarking or consulting its cache, so the choices it cached for
    other calls stay valid and come back with the full list afterwards."""
    saved = [kernel.configs for kernel in kernels]
    for kernel in kernels:
        kernel.configs = [config]
    try:
        yield
    finally:
        for kernel, configs in zip(kernels, saved):
            kernel.configs = configs


def describe(config: Any) -> str:
    """'BLOCK_M 128 x BLOCK_N 64, 8 warps, 3 stages'."""
    tiles = " x ".join(f"{name} {value}" for name, value in config.kwargs.items())
    return f"{tiles}, {config.num_warps} warps, {config.num_stages} stages"


def flash_configurations() -> list[tuple[str, Any, Any]]:
    """(label, forward config, backward config) pairs covering every config of triton_flash's
    forward and both backward kernels (they share one list): config i of each, in turn."""
    from impls.attention import _triton_flash_kernels as flash

    count = max(len(flash.FWD_CONFIGS), len(flash.BWD_CONFIGS))
    pairs = [(flash.FWD_CONFIGS[i % len(flash.FWD_CONFIGS)], flash.BWD_CONFIGS[i % len(flash.BWD_CONFIGS)])
             for i in range(count)]
    return [(f"fwd {describe(f)}; bwd {describe(b)}", f, b) for f, b in pairs]


def pinned_flash(variant: Variant, forward: Any, backward: Any) -> Variant:
    """`variant` with triton_flash's kernels held at these configs while it runs."""
    from impls.attention import _triton_flash_kernels as flash

    def check() -> dict[str, Any]:
        with pinned([flash._forward_kernel], forward), \
                pinned([flash._backward_kv_kernel, flash._backward_q_kernel], backward):
            record = variant.check()
        if record["status"] == "error" and "out of resource" in record["reason"].lower():
            # more shared memory or registers than this GPU has: the autotuner passes over such
            # a config (it times it as infinitely slow), so no call ever runs it here
            return {**record, "status": "skipped", "reason": f"too large for this GPU: {record['reason']}"}
        return record

    return Variant(variant.label, check)


@dataclass(frozen=True)
class ScanShape:
    batch: int
    dim: int  # channels
    state: int
    length: int
    groups: int | None  # None: B and C shared by every channel

    def __str__(self) -> str:
        shared = "shared B, C" if self.groups is None else f"{self.groups} groups"
        return f"b {self.batch}, d {self.dim}, n {self.state}, L {self.length}, {shared}"


def scan_variant(device: str, precision: str, shape: ScanShape, block_d: int) -> Variant:
    """selective_scan_triton with D, z, delta_bias, softplus and an initial state, its output,
    final state and every input's gradient against autograd through selective_scan_ref in
    float64 on the same rounded inputs, at the kernel's stated ACCURACY."""

    def check() -> dict[str, Any]:
        ok, reason = registry.available(registry.get("mixer", "mamba_triton"), device, precision)
        if not ok:
            return {"status": "skipped", "reason": reason, "metrics": {}}
        from impls.mixers.selective_scan import selective_scan_ref
        from impls.mixers._selective_scan_triton import ACCURACY, selective_scan_triton

        args = {k: v.to(device, FLOAT_DTYPES[precision]).requires_grad_() for k, v in _scan_inputs(shape).items()}
        exact = {k: v.detach().double().requires_grad_() for k, v in args.items()}
        y, h = selective_scan_triton(**args, delta_softplus=True, return_last_state=True, block_d=block_d)
        y64, h64 = selective_scan_ref(**exact, delta_softplus=True, return_last_state=True)
        gen = torch.Generator().manual_seed(1)
        dy, dh = (torch.randn(t.shape, generator=gen, dtype=torch.float64).to(device) for t in (y, h))
        torch.autograd.backward((y, h), (dy.to(y.dtype), dh.to(h.dtype)))
        torch.autograd.backward((y64, h64), (dy, dh))
        errors = [_relative(y, y64), _relative(h, h64)] + [_relative(args[k].grad, exact[k].grad) for k in args]
        worst, tolerance = max(errors), ACCURACY[precision]
        within = worst <= tolerance
        return {"status": "ok" if within else "wrong",
                "reason": "" if within else f"error {worst:.2e} above tolerance {tolerance:.1e}",
                "metrics": {"rel_err": worst, "tolerance": tolerance}}

    return Variant(f"{shape}, block_d {block_d}, fwd+bwd", check)


def _scan_inputs(shape: ScanShape) -> dict[str, torch.Tensor]:
    """Seeded float64 inputs on the CPU (delta positive, A negative: a decay)."""
    gen = torch.Generator().manual_seed(shape.length)
    b, d, n, length = shape.batch, shape.dim, shape.state, shape.length

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=gen, dtype=torch.float64)

    bc = (b, n, length) if shape.groups is None else (b, shape.groups, n, length)
    return dict(u=randn(b, d, length), delta=randn(b, d, length).abs() * 0.5, A=-randn(d, n).abs(),
                B=randn(*bc), C=randn(*bc), D=randn(d), z=randn(b, d, length), delta_bias=randn(d) * 0.5,
                initial_state=randn(b, d, n))


def _relative(ours: torch.Tensor, exact: torch.Tensor) -> float:
    """max |ours - exact| / max(|exact|, 1), as ACCURACY is stated."""
    ours, exact = ours.detach().double().cpu(), exact.detach().cpu()
    return float((ours - exact).abs().max() / exact.abs().max().clamp_min(1.0))
