"""This device's measured ceilings: matmul rate per precision, copy and read bandwidth.

A benchmark's TFLOP/s or GB/s means more as a fraction of what the device
actually reaches on the simplest work of that kind: a large square matmul
(per precision; int8 through torch._int_mm), a large tensor copy (bytes
read plus bytes written) and a large read (a sum over a tensor far larger than
the caches; on a CPU with one thread, as a batch-1 decode step on one core reads
its weights: the ceiling of its weight-read bandwidth). `calibrate` measures them with the same timer as
every case; the result is stored per environment id in
calibration-<env_id>.json, where harness.measure.ceilings finds it again.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from harness.measure import timer
from harness.measure.ceilings import path_for
from impls.precision import DTYPES, PRECISIONS

# Square matmul sizes (the ceiling is the best rate over them) and copy size (bytes) per
# device; the GPU's are large enough to saturate an H100. A size is measured only while
# one call is predicted (n^3 from the size below) to take under MAX_CALL_S, so the slow
# precisions of a CPU (emulated fp16, int8) stop early and calibration stays within
# about half a minute on a small shared machine.
MATMUL_SIZES = {"cpu": (256, 512, 1024, 2048), "cuda": (2048, 4096, 8192)}
MAX_CALL_S = 0.25
COPY_BYTES = {"cpu": 32 << 20, "cuda": 1 << 30}
READ_BYTES = {"cpu": 256 << 20, "cuda": 1 << 30}  # 8x a large server CPU's last-level cache
READ_THREADS = {"cpu": 1, "cuda": None}
SETTINGS = timer.TimerSettings(min_reps=3, max_reps=50, noise_target=0.05, max_time_s=0.5)


@dataclass(frozen=True)
class Measurement:
    kind: str  # "matmul", "copy" or "read"
    precision: str
    size: int  # matmul: n of an n x n x n product; copy, read: bytes copied, read
    median_ms: float
    rate: float  # matmul: FLOP/s; copy: bytes/s (read + written); read: bytes/s read


def _median_ms(fn: Callable[[], object], device: str, settings: timer.TimerSettings = SETTINGS) -> float:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()  # first call apart: lazy init, kernel selection
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return statistics.median(timer.measure(fn, device, settings, call_s=time.perf_counter() - start))


def _operands(n: int, precision: str, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    if precision == "int8":
        return tuple(torch.randint(-127, 128, (n, n), generator=gen, device=device, dtype=torch.int8)
                     for _ in range(2))
    return tuple(torch.randn(n, n, generator=gen, device=device, dtype=DTYPES[precision]) for _ in range(2))


def matmul_rate(n: int, precision: str, device: str) -> Measurement:
    """FLOP/s of one n x n x n product (2 n^3 FLOPs, int8 ops counted the same)."""
    a, b = _operands(n, precision, device)
    product = (lambda: torch._int_mm(a, b)) if precision == "int8" else (lambda: a @ b)
    ms = _median_ms(product, device)
    return Measurement("matmul", precision, n, ms, 2.0 * n ** 3 / (ms / 1e3))


def copy_rate(nbytes: int, device: str) -> Measurement:
    """Bytes/s of copying one tensor of `nbytes` into another (counts read + write)."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), device)
    return Measurement("copy", "fp32", nbytes, ms, 2.0 * nbytes / (ms / 1e3))


def read_rate(nbytes: int, device: str, threads: int | None = None) -> Measurement:
    """Bytes/s of reading one fp32 tensor of `nbytes` once (its sum), with `threads` CPU
    threads (None: torch's current number)."""
    src = torch.ones(nbytes // 4, device=device)
    ms = _median_ms(src.sum, device, replace(SETTINGS, threads=threads))
    return Measurement("read", "fp32", nbytes, ms, nbytes / (ms / 1e3))


def measure_ceilings(device: str, sizes: tuple[int, ...] | None = None, copy_bytes: int | None = None,
                     read_bytes: int | None = None) -> tuple[dict[str, Any], list[Measurement]]:
    """({'flops': {precision: FLOP/s}, 'bytes_per_s': copy B/s, 'read_bytes_per_s': read B/s
    (one thread on a CPU)}, every measurement).

    The ceiling is the best rate over the sizes; a precision this device cannot
    multiply in (an error from torch) is left out and noted under 'missing'.
    """
    measured: list[Measurement] = []
    missing: dict[str, str] = {}
    for precision in PRECISIONS:
        try:
            measured += _matmul_sweep(sizes or MATMUL_SIZES[device], precision, device)
        except RuntimeError as err:  # e.g. no int8 matmul kernel on this device
            missing[precision] = str(err).splitlines()[0][:200]
    measured.append(copy_rate(copy_bytes or COPY_BYTES[device], device))
    measured.append(read_rate(read_bytes or READ_BYTES[device], device, READ_THREADS[device]))
    flops: dict[str, float] = {}
    for m in measured:
        if m.kind == "matmul":
            flops[m.precision] = max(flops.get(m.precision, 0.0), m.rate)
    ceilings = {"flops": flops, "bytes_per_s": max(m.rate for m in measured if m.kind == "copy"),
                "read_bytes_per_s": max(m.rate for m in measured if m.kind == "read")}
    if missing:
        ceilings["missing"] = missing
    return ceilings, measured


def _matmul_sweep(sizes: tuple[int, ...], precision: str, device: str) -> list[Measurement]:
    """Rates at increasing sizes, stopping before one whose call would exceed MAX_CALL_S."""
    out: list[Measurement] = []
    for n in sorted(sizes):
        if out and out[-1].median_ms / 1e3 * (n / out[-1].size) ** 3 > MAX_CALL_S:
            break
        out.append(matmul_rate(n, precision, device))
    return out


def save(env: dict[str, Any], ceilings: dict[str, Any], measured: list[Measurement],
         folder: Path | None = None) -> Path:
    """Write calibration-<env_id>.json (in `folder`, default harness.measure.ceilings.default_folder()) with the
    env it was measured in; harness.measure.ceilings reads it back."""
    path = path_for(env["env_id"], folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"env_id": env["env_id"], "env": env, "ceilings": ceilings,
                                "measurements": [asdict(m) for m in measured]}, indent=2, default=str))
    return path
