"""The keys of a rank group's store through which ranks answer the driver's commands.

Command i is answered under `res/<i>/<rank>`; joining the group is command -1, and `now`
holds the command the driver waits on; `dead` says a rank died (the group cannot answer again). An answer is
a pickled {"ok": value} or {"error": message, "trace": text}. Whoever sees a failure first (a
rank whose command raised, rank 0 seeing another rank die, the driver seeing the ranks
exit) writes the error into every answer still missing, with compare_set, so no answer a
rank already gave is overwritten and the driver never waits on a rank that cannot answer.
"""
from __future__ import annotations

import pickle
from typing import Any

import torch.distributed as dist


NOW = "now"
DEAD = "dead"


def key(index: int, rank: int) -> str:
    return f"res/{index}/{rank}"


def ok(value: Any) -> bytes:
    return pickle.dumps({"ok": value})


def fail_pending(store: dist.Store, index: int, world: int, message: str, trace: str = "") -> None:
    error = pickle.dumps({"error": message, "trace": trace})
    for rank in range(world):
        store.compare_set(key(index, rank), "", error)
