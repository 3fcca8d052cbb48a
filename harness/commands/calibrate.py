"""`calibrate`: measure this device's matmul rates, copy and read bandwidth."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness import console, env as environment
from harness.plan import resolve_device
from harness.measure import calibrate

NAME = "calibrate"
HELP = ("measure this device's matmul FLOP/s per precision, copy GB/s and (one-thread on a CPU) read GB/s "
        "(results/calibration-<env>.json)")

QUICK = {"sizes": (128, 256), "copy_bytes": 4 << 20, "read_bytes": 16 << 20}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if present, else cpu")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of calibration files (default: results/ at the repository root, "
                             "or $SEQBENCH_CALIBRATION); `run` looks there and in its own --out")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes only, in seconds: a check that calibration runs here (its figures are "
                             "far below the device's ceilings; scripts/gpu_check.sh --dry uses it)")


def main(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    env = environment.collect(device)
    ceilings, measured = (calibrate.measure_ceilings(device, **QUICK) if args.quick
                          else calibrate.measure_ceilings(device))
    for m in measured:
        unit = f"{m.rate / 1e12:8.3f} TFLOP/s" if m.kind == "matmul" else f"{m.rate / 1e9:8.2f} GB/s"
        console.console.print(f"{m.kind:6s} {m.precision:4s} size {m.size:>10d}  {m.median_ms:9.3f} ms  {unit}")
    for precision, reason in ceilings.get("missing", {}).items():
        console.console.print(f"matmul {precision}: not measured ({reason})", markup=False)
    path = calibrate.save(env, ceilings, measured, args.out)
    console.console.print(f"ceilings for env {env['env_id']} -> {path}", markup=False)
    return 0
