"""The rank processes: `python -m harness.distributed.ranks HOST PORT WORLD DEVICE THREADS`.

One process imports torch and the impls once, then forks the other ranks (cheap: nothing
has started a thread yet) and serves as rank 0. Every rank joins the process group through
the driver's TCPStore (harness.distributed.group) and then serves its commands from the same
store: the driver writes `cmd/<i>`, each rank answers `res/<i>/<rank>`. A rank whose command
raises answers with the error for every rank that has not answered (harness.distributed.
answers), so the driver stops waiting for ranks that may now hang in a collective; rank 0
does the same when another rank dies.
"""
from __future__ import annotations

import os
import pickle
import sys
import threading
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
_command = [-1]  # the command rank 0 is serving (-1: joining the group), for its watch thread


def main(argv: list[str]) -> int:
    host, port, world, device, threads = argv[0], int(argv[1]), int(argv[2]), argv[3], int(argv[4])
    registry.load_all()
    children = {}
    for rank in range(1, world):
        pid = os.fork()
        if pid == 0:
            os._exit(_serve(host, port, rank, world, device, threads))
        children[pid] = rank
    if children:
        threading.Thread(target=_watch, args=(children, world, host, port), name="rank-watch", daemon=True).start()
    return _serve(host, port, 0, world, device, threads)


def _store(host: str, port: int) -> dist.TCPStore:
    return dist.TCPStore(host, port, is_master=False, timeout=IDLE_TIMEOUT)


def _watch(children: dict[int, int], world: int, host: str, port: int) -> None:
    """Rank 0's thread: a rank that dies abnormally fails the group at once."""
    store = _store(host, port)
    while children:
        pid, status = os.wait()
        rank = children.pop(pid, None)
        if rank is not None and status:
            answers.fail_pending(store, _command[0], world, f"rank {rank} died ({_status_text(status)})")


def _status_text(status: int) -> str:
    return f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"


def _serve(host: str, port: int, rank: int, world: int, device: str, threads: int) -> NoReturn:
    torch.set_num_threads(threads)
    allocator.steady()
    store = _store(host, port)
    if device == "cuda":
        torch.cuda.set_device(rank)
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.PrefixStore("pg", store), rank=rank, world_size=world,
                            timeout=IDLE_TIMEOUT)
    store.set(answers.key(-1, rank), answers.ok(rank))
    job, index = None, 0
    while True:
        _command[0] = index
        try:
            command = pickle.loads(store.get(f"cmd/{index}"))
        except dist.DistError:  # the driver is gone (its worker ended or was killed): so is the group
            os._exit(0)
        try:
            if command["op"] == "prepare":
                job = None  # the last case's tensors go before the next case's are made
                job = Job.build(rank, world, device, command)
                answer = {"ok": job.describe()}
            elif command["op"] in Job.COMMANDS:
                answer = {"ok": getattr(job, command["op"])()}
            else:
                raise ValueError(f"no command {command['op']!r}; valid: prepare, {', '.join(Job.COMMANDS)}")
        except BaseException as err:  # told to the driver, which records the case as an error
            message = f"rank {rank}: {type(err).__name__}: {err}"
            answers.fail_pending(store, index, world, message, traceback.format_exc(limit=8))
            index += 1
            continue
        store.set(answers.key(index, rank), pickle.dumps(answer))
        index += 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
