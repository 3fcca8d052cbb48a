"""The driver's side of a distributed case: groups of rank processes, started once and
reused by the cases that need the same world (harness.distributed.ranks serves them).

One fork server per driver process (a worker) imports torch once and forks every group's
ranks. The driver holds each group's TCPStore on 127.0.0.1 (a free port the kernel picks),
through which the ranks both form their process group and take commands. A command is
answered by every rank (harness.distributed.answers); an error on any rank, a dead rank or a
dead server ends the group and raises RankError with the first message. A rank that hangs
without failing is ended with its worker by the case's timeout.
"""
from __future__ import annotations

import json
import os
import pickle
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
        self._index, self._closed = -1, False
        self._store.set(answers.NOW, "-1")
        self._server = _fork_server()
        threading.Thread(target=self._watch, name="fork-server-watch", daemon=True).start()
        _tell(self._server, {"host": HOST, "port": self._store.port, "world": world, "device": device,
                             "threads": threads})
        self.pids = self._collect(-1)  # every rank has joined the process group

    @property
    def alive(self) -> bool:
        return not self._closed and self._server.poll() is None

    def call(self, op: str, **payload: Any) -> list[Any]:
        """Every rank's answer to one command, in rank order."""
        if not self.alive:
            raise RankError("the rank group is closed")
        self._store.set(answers.NOW, str(self._index))
        self._store.set(f"cmd/{self._index}", pickle.dumps({"op": op, **payload}))
        if self._store.check([answers.DEAD]):  # a rank died before the command reached it
            self.close()
            raise RankError(self._store.get(answers.DEAD).decode())
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
        """A fork server that exits takes its ranks with it: that answers the pending command."""
        status = self._server.wait()
        if not self._closed:
            answers.fail_pending(self._store, self._index, self.world, f"the rank processes' server exited ({status})")

    def close(self) -> None:
        """End the ranks (the server kills them: they hold nothing to save)."""
        if not self._closed and self._server.poll() is None:
            _tell(self._server, {"close": self._store.port})
        self._closed = True


_SERVER: list[subprocess.Popen] = []


def _fork_server() -> subprocess.Popen:
    """This process's fork server, started on first use (one torch import for every group)."""
    if _SERVER and _SERVER[0].poll() is None:
        return _SERVER[0]
    env = dict(os.environ)
    # the ranks import the same harness and impls as this process, wherever it was started
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(PROJECT), env.get("PYTHONPATH"))))
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo's own connections stay on loopback too
    env.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # a driver gone is the ranks' cue to end, not a warning
    _SERVER[:] = [subprocess.Popen([sys.executable, "-m", "harness.distributed.ranks"], stdin=subprocess.PIPE,
                                   env=env, start_new_session=True, text=True)]
    return _SERVER[0]


def _tell(server: subprocess.Popen, request: dict) -> None:
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()


_SHARED: dict[tuple[str, int, int], RankGroup] = {}


def shared(world: int, device: str, threads: int) -> RankGroup:
    """A live group of this shape, started if needed. Groups of other shapes stay up, idle (a
    group's start costs little once the server is up, but suites alternate world sizes), and
    let go of their last case's tensors first."""
    key = (device, world, threads)
    for other, group in list(_SHARED.items()):
        if not group.alive:
            _SHARED.pop(other)
        elif other != key:
            group.call("release")
    if key not in _SHARED:
        _SHARED[key] = RankGroup(world, device, threads)
    return _SHARED[key]
