"""The CUDA caching allocator's history over the profiled pass, saved as the pickle PyTorch's
memory visualiser (pytorch.org/memory_viz) opens: every allocation and free with its stack."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MAX_ENTRIES = 100_000  # allocation events kept; the visualiser slows down far beyond this


@contextmanager
def history(path: Path) -> Iterator[None]:
    """Record the allocator's history for the block and write its snapshot to `path`."""
    import torch

    torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES)
    try:
        yield
        torch.cuda.memory._dump_snapshot(str(path))
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
