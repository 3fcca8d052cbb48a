"""Energy around the timed region, where the platform exposes a counter.

CUDA: NVML's total energy counter of the device (millijoules since the driver loaded;
Volta and later). CPU: RAPL through Linux powercap (/sys/class/powercap/intel-rapl:N,
one zone per package, microjoules, wrapping at max_energy_range_uj), summed over
packages. Each counter is read before and after the timing loop, and the calls made
between are counted, so the record holds joules per call (and per token where a call
has tokens). Both counters see the whole device or package: other processes running
meanwhile add to it, and on CUDA the L2 flush do_bench writes between calls is
counted with the calls. Where no counter is readable the record says why instead.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

POWERCAP = Path("/sys/class/powercap")


class Counter(Protocol):
    name: str

    def joules(self) -> float:
        """The counter's reading in joules (its origin is arbitrary)."""


class NvmlCounter:
    name = "nvml"

    def __init__(self, pynvml: Any, handle: Any):
        self._pynvml, self._handle = pynvml, handle

    def joules(self) -> float:
        return self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


class RaplCounter:
    """Package zones of powercap, each unwrapped across reads (a counter that went down
    between two reads wrapped once at max_energy_range_uj)."""

    name = "rapl"

    def __init__(self, zones: list[Path]):
        self._zones = zones
        self._ranges = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        self._last = [self._read(z) for z in zones]
        self._total_uj = 0

    @staticmethod
    def _read(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def joules(self) -> float:
        for i, zone in enumerate(self._zones):
            now = self._read(zone)
            step = now - self._last[i]
            self._total_uj += step if step >= 0 else step + self._ranges[i]
            self._last[i] = now
        return self._total_uj / 1e6


def counter_for(device: str, powercap: Path = POWERCAP) -> tuple[Counter | None, str]:
    """This device's energy counter, or None and why it is not measured here."""
    return _nvml() if device == "cuda" else _rapl(powercap)


def _nvml() -> tuple[Counter | None, str]:
    try:
        import pynvml
        import torch
    except ImportError:
        return None, "pynvml is not installed (nvidia-ml-py), so NVML's energy counter is not read"
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        counter = NvmlCounter(pynvml, handle)
        counter.joules()  # pre-Volta GPUs and some containers answer NVMLError here
    except Exception as err:  # NVMLError_NotSupported, NoPermission, ...
        return None, f"NVML's energy counter is not readable here: {type(err).__name__}: {err}"
    return counter, ""


def _rapl(powercap: Path) -> tuple[Counter | None, str]:
    if not powercap.is_dir():
        return None, f"no RAPL energy counter: {powercap} does not exist on this machine"
    zones = sorted(z for z in powercap.glob("intel-rapl:*") if z.name.count(":") == 1)
    if not zones:
        return None, f"no RAPL package zone (intel-rapl:N) under {powercap}"
    try:
        return RaplCounter(zones), ""
    except (OSError, ValueError) as err:  # energy_uj is root-only on kernels since 5.10
        return None, f"RAPL energy counter not readable: {err}"


class Meter:
    """Joules over a region and the calls made in it. `counted(fn)` is `fn` with a call
    count, used for the timing loop only where there is a counter to read."""

    def __init__(self, device: str, powercap: Path = POWERCAP):
        self.counter, self.reason = counter_for(device, powercap)
        self.calls = 0
        self._start = 0.0

    def counted(self, fn: Callable[[], object]) -> Callable[[], object]:
        if self.counter is None:
            return fn

        def call():
            self.calls += 1
            return fn()

        return call

    def start(self) -> None:
        self.calls = 0
        if self.counter is not None:
            self._start = self.counter.joules()

    def metrics(self, tokens_per_call: float | None) -> dict[str, Any]:
        """energy_j_per_call (and energy_j_per_token), or energy_not_measured with the reason."""
        if self.counter is None:
            return {"energy_not_measured": self.reason}
        joules = self.counter.joules() - self._start
        if self.calls == 0:
            return {"energy_not_measured": "no call was made while the counter ran"}
        out: dict[str, Any] = {"energy_counter": self.counter.name, "energy_j_per_call": joules / self.calls}
        if tokens_per_call:
            out["energy_j_per_token"] = joules / self.calls / tokens_per_call
        return out
