"""One case as a rank holds it: its part of the inputs, and the calls the driver asks for.

Every rank draws the case's full inputs from the case's seed and keeps only its part, so
the parts fit together without any rank sending inputs, and checks its part of the output
against the same part of the single-process fp64 result (on a shape small enough for that).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from harness.measure import memory
from impls import registry
from impls.distributed.comm import Comm
from impls.distributed.problem import Distributed, Shape


@dataclass
class Job:
    COMMANDS: ClassVar[tuple[str, ...]] = ("run", "check", "memory")

    impl: Distributed
    shape: Shape
    check_shape: Shape
    impl_kwargs: dict[str, Any]
    dtype: torch.dtype
    device: str
    seed: int
    comm: Comm
    local: tuple[torch.Tensor, ...]

    @classmethod
    def build(cls, rank: int, world: int, device: str, command: dict[str, Any]) -> Job:
        impl = registry.get("distributed", command["impl"]).fn
        shape = Shape(**command["shape"], world=world)
        dtype = getattr(torch, command["dtype"])
        where = f"cuda:{rank}" if device == "cuda" else "cpu"
        job = cls(impl, shape, Shape(**command["check_shape"], world=world), command["impl_kwargs"], dtype, where,
                  command["seed"], Comm(rank, world), ())
        job.local = job._local_inputs(shape)
        return job

    def _local_inputs(self, shape: Shape) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        full = self.impl.inputs(shape, generator, self.dtype, self.device)
        return self.impl.shard(full, self.comm.rank, shape, **self.impl_kwargs)

    def _forward(self, local: tuple[torch.Tensor, ...], shape: Shape) -> torch.Tensor:
        with torch.no_grad():
            return self.impl.forward(self.comm, local, shape, **self.impl_kwargs)

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def run(self) -> dict[str, Any]:
        """One timed call: its time (ms), what it handed to communication (counted) and what
        this process wrote to its sockets meanwhile (measured; None where unreadable)."""
        self.comm.reset()
        written = _bytes_written()
        self._sync()
        start = time.perf_counter()
        self._forward(self.local, self.shape)
        self._sync()
        elapsed = time.perf_counter() - start
        after = _bytes_written()
        measured = after - written if written is not None and after is not None and self.device == "cpu" else None
        return {"ms": elapsed * 1e3, "counted": self.comm.bytes, "calls": sum(self.comm.calls_by_op.values()),
                "measured": measured}

    def memory(self) -> dict[str, float]:
        """This rank's peak memory of one call, as the worker measures a case's (harness.measure.memory)."""
        return memory.peak(lambda: self._forward(self.local, self.shape), "cuda" if self.device.startswith("cuda") else "cpu")

    def check(self) -> dict[str, float]:
        """This rank's part against the same part of the fp64 single-process result."""
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        full = self.impl.inputs(self.check_shape, generator, self.dtype, self.device)
        local = self.impl.shard(full, self.comm.rank, self.check_shape, **self.impl_kwargs)
        out = self._forward(local, self.check_shape).double()
        expected = self.impl.part(self.impl.reference(tuple(t.double() for t in full), self.check_shape),
                                  self.comm.rank, self.check_shape, **self.impl_kwargs)
        if not torch.isfinite(out).all():
            return {"max_abs_err": float("inf"), "scale": float(expected.abs().max())}
        return {"max_abs_err": float((out - expected).abs().max()), "scale": float(expected.abs().max())}


def _bytes_written() -> int | None:
    """Bytes this process has passed to write(2) and writev(2) (gloo's sockets among them)."""
    try:
        with open("/proc/self/io") as handle:
            for line in handle:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
