"""Triton kernel cases run by pytest in a fresh process: under TRITON_INTERPRET=1 on a
CPU (it must be set before triton is imported, and the registry imports it early),
compiled for the GPU on a CUDA machine."""
from __future__ import annotations

import os
import subprocess
import sys

import torch


def run_kernel_cases(*pytest_args: str) -> None:
    """Run pytest on `pytest_args` (files or node ids) in a fresh process; fail unless every
    collected case passed (none skipped)."""
    env = dict(os.environ)
    if torch.cuda.is_available():
        env.pop("TRITON_INTERPRET", None)  # compile for the GPU
    else:
        env["TRITON_INTERPRET"] = "1"
    run = subprocess.run([sys.executable, "-m", "pytest", *pytest_args, "-q", "-p", "no:cacheprovider"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout
