"""The driver's side of a distributed case: a group of rank processes, started once and
reused by the cases that need the same world (harness.distributed.ranks serves them).

The driver holds the group's TCPStore on 127.0.0.1 (a free port the kernel picks), through
which the ranks both form their process group and take commands. A command is answered by
every rank (harness.distributed.answers); an error on any rank, a dead rank or dead rank
processes end the group and raise RankError with the first message. A rank that hangs
without failing is ended with its worker by the case's timeout.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist

from harness.distributed import answers

HOST = "127.0.0.1"
PROJECT = Path(__file__).resolve().parents[2]
WAIT = timedelta(hours=6)  # a failure answers for the ranks; a hang is the case timeout's to end


class RankError(RuntimeError):
    """A rank's command failed, or a rank died; the group is closed."""


class RankGroup:
    def __init__(self, world: int, device: str, threads: int):
        self.world, self.device, self.threads = world, device, threads
        self._store = dist.TCPStore(HOST, 0, is_master=True, wait_for_workers=False, timeout=WAIT)
        env = dict(os.environ)
        # the ranks import the same harness and impls as this process, wherever it was started
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(PROJECT), env.get("PYTHONPATH"))))
        if device == "cpu":
            env["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's own connections stay on loopback too
        self._process = subprocess.Popen(
            [sys.executable, "-m", "harness.distributed.ranks", HOST, str(self._store.port), str(world), device,
             str(threads)], env=env, start_new_session=True)
        self._index, self._broken = -1, False
        threading.Thread(target=self._watch, name="ranks-watch", daemon=True).start()
        self._collect(-1)  # every rank has joined the process group
        self._index = 0

    @property
    def alive(self) -> bool:
        return not self._broken and self._process.poll() is None

    def call(self, op: str, **payload: Any) -> list[Any]:
        """Every rank's answer to one command, in rank order."""
        if not self.alive:
            raise RankError("the rank group is closed")
        self._store.set(f"cmd/{self._index}", pickle.dumps({"op": op, **payload}))
        return self._collect(self._index)

    def _collect(self, index: int) -> list[Any]:
        replies = []
        for rank in range(self.world):
            key = answers.key(index, rank)
            self._store.wait([key])
            replies.append(pickle.loads(self._store.get(key)))
        for rank in range(self.world):
            self._store.delete_key(answers.key(index, rank))
        self._index = index + 1
        failed = next((reply for reply in replies if "error" in reply), None)
        if failed:
            self.close()
            raise RankError(failed["error"])
        return [reply["ok"] for reply in replies]

    def _watch(self) -> None:
        """Rank processes that exit answer, with that, whatever command is pending."""
        status = self._process.wait()
        if not self._broken:
            answers.fail_pending(self._store, self._index, self.world, f"the rank processes exited (status {status})")

    def close(self) -> None:
        """End the ranks: they hold nothing to save, so their process group is killed."""
        self._broken = True
        if self._process.poll() is None or self.world > 1:  # forked ranks can outlive rank 0
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._process.wait()


_SHARED: dict[tuple[str, int, int], RankGroup] = {}


def shared(world: int, device: str, threads: int) -> RankGroup:
    """A live group of this shape, started if needed; groups of other shapes are closed first
    (their processes would compete with this one's for the cores)."""
    key = (device, world, threads)
    for other in [k for k in _SHARED if k != key or not _SHARED[k].alive]:
        _SHARED.pop(other).close()
    if key not in _SHARED:
        _SHARED[key] = RankGroup(world, device, threads)
    return _SHARED[key]
