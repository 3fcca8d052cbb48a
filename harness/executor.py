"""Where cases run: a spawned worker process, reused between cases.

The worker imports torch once and serves cases over a pipe. A case that
outlives its timeout is killed with its worker; a worker that dies (segfault,
os._exit, the kernel's OOM killer) is recorded and replaced. The run goes on.
"""
from __future__ import annotations

import ctypes
import gc
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from harness import memory_limit
from harness.measure import allocator

if TYPE_CHECKING:  # imported on use: `harness run` starts its worker before pydantic and numpy are in
    from harness.case import Case
    from harness.record import Record

STARTUP_TIMEOUT_S = 300.0
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """End this process when `parent` does, even by SIGKILL (which `daemon=True` does not
    cover): a hung case must not keep its worker, and the device, busy after the runner is gone.

    On Linux the kernel sends SIGKILL at the parent's death (prctl); a thread polling
    the parent's pid does the same anywhere, later."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _serve(conn, parent: int) -> None:
    """Worker main loop: answer each case with its record until told to stop."""
    die_with_parent(parent)
    allocator.steady()
    with _uncollected():
        from harness import plan, worker  # torch and the measuring code, imported once per worker
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:  # no teardown of torch and the frozen heap (0.5 s): nothing is left to save
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if isinstance(job, plan.Request):  # it imports the suite's workload and impls
            with _uncollected():
                answer = _plan(job)
            conn.send(answer)
            continue
        case, ceilings, profile = job
        memory_limit.apply(case.measure.memory_limit_gib)
        conn.send(worker.execute(case, ceilings, profile))


@contextmanager
def _uncollected() -> Iterator[None]:
    """Imports with the collector off, and what they made frozen after. Each collection an import
    triggers walks every object torch made (torch's own import is 0.1-0.3 s shorter without
    them); and what imports make lives as long as the worker: out of the collector's sight, the
    full collection before each memory pass reads only what cases made (0.1 ms, not 140)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _plan(request: Any) -> tuple[str, Any]:
    """("plan", the plan without what only a worker can unpickle) or ("refused", the one-line error)."""
    from harness import plan
    from harness.errors import UserError
    from impls.errors import PluginError

    try:
        return "plan", plan.make(request).portable()
    except (UserError, PluginError) as err:
        return "refused", str(err)


class LocalExecutor:
    """One worker at a time: cases on one device never share it, so timings stay clean.

    The worker is replaced after a crash, a timeout or an out-of-memory error,
    so no case inherits a fragmented allocator or a wedged device."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None
        self._ready = False

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> LocalExecutor:
        """Start a worker now, without waiting for it: its imports overlap whatever the caller
        does until the first case (reading and checking the suite, writing the run folder)."""
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, os.getpid()), daemon=True)
        self._proc.start()
        child.close()  # so that a dead worker shows as EOF on our end
        self._conn, self._ready = parent, False
        return self

    def _wait_ready(self) -> None:
        try:
            ready = self._conn.poll(STARTUP_TIMEOUT_S) and self._conn.recv() == "ready"
        except (EOFError, ConnectionResetError):
            ready = False
        if not ready:
            self._kill()
            self._discard()
            raise RuntimeError("worker process did not start")
        self._ready = True

    def plan(self, request: Any, meanwhile: Callable[[], None] = lambda: None) -> Any:
        """The run's plan (harness.plan.make(request)) made in the worker, which imports torch
        for it anyway; `meanwhile` runs here while it does. A UserError if the worker refuses."""
        from harness.errors import UserError

        if self._proc is None or not self._proc.is_alive():
            self.start()
        self._conn.send(request)
        meanwhile()
        if not self._ready:
            self._wait_ready()
        try:
            kind, answer = self._conn.recv()
        except (EOFError, ConnectionResetError):
            self._kill()
            self._discard()
            raise RuntimeError("worker process died while reading the suite") from None
        if kind == "refused":
            raise UserError(answer)
        return answer

    def run(self, case: Case, ceilings: dict[str, Any] | None = None, profile: Any = None) -> Record:
        """The case's record, measured in the worker (`ceilings`: harness calibrate's, for the
        percent-of-peak metrics; `profile`: a harness.profile.store.Request); a timeout or the
        worker's death is recorded here."""
        from harness.record import Record

        if self._proc is None or not self._proc.is_alive():
            self.start()
        if not self._ready:
            self._wait_ready()
        start, sent_at = time.perf_counter(), time.time()  # the worker is ready: the case starts now
        timeout = case.measure.timeout_s
        self._conn.send((case, ceilings, profile))
        if self._conn.poll(timeout):
            try:
                record = self._conn.recv()
                if record.status == "oom":  # a fresh allocator for the next case
                    self.close()
            except (EOFError, ConnectionResetError):  # the worker died mid-case
                self._proc.join(timeout=10)
                record = Record.worker_died(case, self._proc.exitcode)
                self._discard()
        else:
            self._kill()
            record = Record.timeout(case, timeout)
            self._discard()
        return record.timed(wall_s=time.perf_counter() - start, started_at=sent_at)

    def _kill(self) -> None:
        self._proc.kill()
        self._proc.join()

    def _discard(self) -> None:
        self._conn.close()
        self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive() and not self._ready:
            self._kill()  # still importing: nothing to finish (a suite refused, a dry run)
        elif self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(timeout=5)
            except (BrokenPipeError, OSError):
                pass
            if self._proc.is_alive():
                self._kill()
        self._proc = None
