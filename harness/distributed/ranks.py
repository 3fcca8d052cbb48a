"""The rank processes' parent: `python -m harness.distributed.ranks`, a fork server.

It imports torch and the impls once, then for each group the driver asks for (a line of
JSON on its stdin: host, port, world, device, threads) forks one process per rank, and ends
a group's ranks when asked ({"close": port}). It never
runs torch itself and starts no thread, so each fork is cheap and safe, and groups of every
world size come from the one import. Every rank joins its process group through the
driver's TCPStore (harness.distributed.group) and serves its commands from the same store:
the driver writes `cmd/<i>`, each rank answers `res/<i>/<rank>`. A rank whose command raises
answers with the error for every rank that has not answered (harness.distributed.answers),
so the driver stops waiting for ranks that may now hang in a collective; the server does the
same when a rank dies. Its stdin closing (the driver gone) ends it and every rank.
"""
from __future__ import annotations

import json
import os
import pickle
import select
import signal
import sys
import traceback
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist

from harness.distributed import answers
from harness.distributed.job import Job
from harness.measure import allocator
from impls import registry

IDLE_TIMEOUT = timedelta(hours=6)  # a group waits this long for its next command, then ends
REAP_S = 0.5  # how often the server looks for ranks that died
FAIL_TIMEOUT = timedelta(seconds=10)  # telling a group that a rank died: its driver may be gone too


def main() -> int:
    registry.load_all()
    ranks: dict[int, dict] = {}  # pid -> its group's request and its rank
    pending = b""  # read but not yet a whole line (os.read: select sees no Python-side buffer)
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], REAP_S)
        if readable:
            chunk = os.read(sys.stdin.fileno(), 1 << 16)
            if not chunk:  # the driver is gone
                for pid in ranks:
                    os.kill(pid, signal.SIGKILL)
                return 0
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                _handle(json.loads(line), ranks)
        _reap(ranks)


def _handle(request: dict, ranks: dict[int, dict]) -> None:
    if "close" in request:
        _close(ranks, request["close"])
        return
    for rank in range(request["world"]):
        pid = os.fork()
        if pid == 0:
            try:
                _serve(request, rank)
            finally:  # a rank that cannot join its group ends here, never back in the server's loop
                traceback.print_exc()
                os._exit(1)
        ranks[pid] = request | {"rank": rank}


def _close(ranks: dict[int, dict], port: int) -> None:
    """End the group served through `port`: its ranks hold nothing to save."""
    for pid, rank in ranks.items():
        if rank["port"] == port and not rank.get("closing"):
            rank["closing"] = True
            os.kill(pid, signal.SIGKILL)


def _reap(ranks: dict[int, dict]) -> None:
    """Ranks that ended: one killed or crashed fails its group's pending command."""
    while ranks:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        rank = ranks.pop(pid, None)
        if rank is not None and status and not rank.get("closing"):
            _fail_group(rank, f"rank {rank['rank']} died ({_status_text(status)})")


def _fail_group(rank: dict, message: str) -> None:
    """Told through the group's store, from a child: the server itself never opens a socket
    that a later fork would inherit."""
    if os.fork() == 0:
        try:
            store = dist.TCPStore(rank["host"], rank["port"], is_master=False, timeout=FAIL_TIMEOUT)
            store.set(answers.DEAD, message)  # first: a command the driver sends after reading it sees it
            answers.fail_pending(store, int(store.get(answers.NOW)), rank["world"], message)
        finally:
            os._exit(0)


def _status_text(status: int) -> str:
    return f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"


def _store(host: str, port: int) -> dist.TCPStore:
    return dist.TCPStore(host, port, is_master=False, timeout=IDLE_TIMEOUT)


def _serve(request: dict, rank: int) -> NoReturn:
    """A rank, start to end: join the group, then answer commands until the driver is gone."""
    world, device = request["world"], request["device"]
    torch.set_num_threads(request["threads"])
    allocator.steady()
    store = _store(request["host"], request["port"])
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if device == "cuda" else "gloo", store=dist.PrefixStore("pg", store), rank=rank,
                            world_size=world, timeout=IDLE_TIMEOUT)
    store.set(answers.key(-1, rank), answers.ok(os.getpid()))
    job, index = None, 0
    while True:
        try:
            command = pickle.loads(store.get(f"cmd/{index}"))
        except dist.DistError:  # the driver is gone (its worker ended or was killed): so is the group
            os._exit(0)
        try:
            if command["op"] in ("prepare", "release"):
                job = None  # the last case's tensors go before the next case's are made
                if command["op"] == "prepare":
                    job = Job.build(rank, world, device, command)
                answer = {"ok": None}
            elif command["op"] in Job.COMMANDS:
                answer = {"ok": getattr(job, command["op"])()}
            else:
                raise ValueError(f"no command {command['op']!r}; valid: prepare, release, {', '.join(Job.COMMANDS)}")
        except BaseException as err:  # told to the driver, which records the case as an error
            message = f"rank {rank}: {type(err).__name__}: {err}"
            answers.fail_pending(store, index, world, message, traceback.format_exc(limit=8))
            index += 1
            continue
        store.set(answers.key(index, rank), pickle.dumps(answer))
        index += 1


if __name__ == "__main__":
    sys.exit(main())
