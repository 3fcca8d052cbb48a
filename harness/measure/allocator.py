"""glibc's allocator, held steady so that a timing does not depend on what ran before.

glibc adapts its mmap threshold as a process frees large blocks, so the same call
timed 30 or 40 ms depending on the cases before it. Pinning the threshold at 32 MiB,
where the adaptive one settles, gives every case a warmed-up process's behaviour.
Pinning it also stops the trim threshold from adapting, which left it at 128 KiB:
freed attention scores went back to the OS and returned as page faults on every call
(naive N=512 timed 0.67-0.85x of torch.utils.benchmark's figure). So the trim
threshold is pinned too, at 64 MiB (twice the mmap threshold, as the adaptive rule sets it).

The memory pass lowers the mmap threshold for itself (`small_mmap_threshold`).
Elsewhere than glibc these are no-ops.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from functools import cache

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20
PASS_MMAP_THRESHOLD = 64 * 1024


@cache  # find_library runs ldconfig (~2 ms); the memory pass asks on every case
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _mallopt(param: int, value: int) -> None:
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt:
        mallopt(param, value)


def steady() -> None:
    """Pin the mmap and trim thresholds (idempotent; call before timing)."""
    _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


@contextmanager
def small_mmap_threshold():
    """Allocations >= 64 KiB go to mmap (and back to the OS on free) while in the block.

    The heap is trimmed first: free chunks left by the timing passes would otherwise
    be reused without raising the resident set, and a case read near zero (chunked
    at N=2048: 0 bytes; with the trim 8.7 MB against 5.5 MB expected)."""
    _mallopt(M_MMAP_THRESHOLD, PASS_MMAP_THRESHOLD)
    libc = _libc()
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    try:
        yield
    finally:
        _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
