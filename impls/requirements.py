"""Reusable requirements for `register(requires=...)`.

Each returns a function (device, precision) -> None when met, or a reason.
One that can be met on some devices only says which in its `devices` attribute,
so that `runs_on` can tell where an impl runs without asking the hardware.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from functools import lru_cache

import torch


def cuda(device: str, precision: str) -> str | None:
    if device != "cuda":
        return "needs a CUDA GPU"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    return None


cuda.devices = frozenset({"cuda"})


def runs_on(devices: frozenset[str], requires: tuple) -> frozenset[str]:
    """The devices among `devices` on which every requirement can be met."""
    return devices.intersection(*(getattr(r, "devices", devices) for r in requires))


def module(name: str, pip_name: str | None = None):
    """Needs the importable module `name` (installed as `pip_name`)."""

    def check(device: str, precision: str) -> str | None:
        if _importable(name):
            return None
        return f"{pip_name or name} is not installed"

    return check


def version(pip_name: str, at_least: tuple[int, ...] = (), below: tuple[int, ...] | None = None):
    """Needs the distribution `pip_name` installed at a version in [at_least, below).

    Read from the package metadata, so nothing is imported to check it."""

    def check(device: str, precision: str) -> str | None:
        try:
            text = importlib.metadata.version(pip_name)
        except importlib.metadata.PackageNotFoundError:
            return f"{pip_name} is not installed"
        have = tuple(int(n) for n in re.findall(r"\d+", text)[:3])
        wanted = ">= " + ".".join(map(str, at_least)) if at_least else ""
        if below:
            wanted += (", " if wanted else "") + "< " + ".".join(map(str, below))
        if have < at_least or (below and have >= below):
            return f"needs {pip_name} {wanted}, found {text}"
        return None

    return check


def capability(major: int, minor: int = 0):
    """Needs a CUDA device of compute capability >= major.minor."""

    def check(device: str, precision: str) -> str | None:
        reason = cuda(device, precision)
        if reason:
            return reason
        have = torch.cuda.get_device_capability()
        if have < (major, minor):
            return f"needs compute capability >= {major}.{minor}, this GPU has {have[0]}.{have[1]}"
        return None

    check.devices = cuda.devices
    return check


def triton(device: str, precision: str) -> str | None:
    """Triton compiles for CUDA; on the CPU it runs only under TRITON_INTERPRET=1."""
    if not _importable("triton"):
        return "triton is not installed"
    if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "triton runs on the CPU only under TRITON_INTERPRET=1"
    if device == "cuda":
        return cuda(device, precision)
    return None


@lru_cache(maxsize=None)
def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
