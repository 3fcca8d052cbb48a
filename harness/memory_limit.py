"""The memory a worker may take: one runaway case must not take the whole machine.

A worker runs each case under RLIMIT_DATA (its heap and private writable mappings,
which is where tensors live on the CPU): past it an allocation fails inside the case,
which then ends as `oom` and prunes its larger sizes, instead of the kernel's OOM
killer choosing among every process on the machine. RLIMIT_DATA rather than RLIMIT_AS:
address space that is only reserved (CUDA's, thread stacks' guard pages) is not counted.
"""
from __future__ import annotations

import os
import resource

DEFAULT_SHARE = 0.75  # of the machine's physical memory, when measure.memory_limit_gib is not set


def machine_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def limit_bytes(limit_gib: float | None) -> int:
    """The limit for a suite's `measure.memory_limit_gib` (None: DEFAULT_SHARE of this machine)."""
    return int(limit_gib * 2**30) if limit_gib else int(DEFAULT_SHARE * machine_bytes())


def apply(limit_gib: float | None) -> int:
    """Limit this process (a worker) to `limit_bytes(limit_gib)`, or to its hard limit if that is
    lower; returns the limit in bytes. Only the soft limit moves, so a later case may raise it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    wanted = limit_bytes(limit_gib)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
    return wanted
