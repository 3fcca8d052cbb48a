"""Where cases run on a Ray cluster: `harness run SUITE --executor ray`.

Each case goes to a Ray actor (a CaseHost) that holds what the case needs: one GPU for a
GPU case, its threads' CPUs for a CPU case. The host measures the case in the same
LocalExecutor the local runner uses (a spawned worker process), so isolation and statuses
are the local ones: a case that crashes, runs out of memory or times out ends its worker
process, which the host replaces. A host that dies itself (killed, its node lost) makes
its case an error row and is replaced. Several cases run at once, one per host, as far as
the cluster's resources go; records come back as each case finishes.

Ray is imported here only: the runner sees an executor whose `stream` yields records.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator

import ray
from ray.exceptions import OutOfMemoryError, RayActorError, RayError

from harness import console
from harness.case import Case
from harness.errors import UserError
from harness.executor import LocalExecutor
from harness.record import Record

Job = tuple[Case, "dict[str, Any] | None", Any]  # (case, ceilings, profile request), as LocalExecutor.run takes
PROBE_S = 5.0  # how long an address may take to accept a connection before it counts as unreachable


@dataclass(frozen=True)
class Shape:
    """The resources a case's host holds."""

    cpus: float
    gpus: float

    def fits(self, cpus: float, gpus: float) -> bool:
        return self.cpus <= cpus and self.gpus <= gpus


def shape_of(case: Case, smallest_node_cpus: float) -> Shape:
    """One GPU (and its threads, else one CPU) for a GPU case; a CPU case's threads as CPUs, or
    without a thread count (torch's default, every core) the CPUs of the cluster's smallest node."""
    threads = case.measure.threads
    if case.device == "cuda":
        return Shape(float(threads or 1), 1.0)
    return Shape(float(threads or smallest_node_cpus), 0.0)


@ray.remote(max_restarts=0, max_task_retries=0)
class CaseHost:
    """A Ray actor that runs cases in its own LocalExecutor worker (replaced after a crash, an
    out-of-memory error or a timeout, as locally)."""

    def __init__(self, device: str, omp_threads: str | None, driver_node: str) -> None:
        self._executor = LocalExecutor().start()
        # on the driver's node the run's env.json is this node's; elsewhere it is read beside the
        # worker's start-up, once per host
        here = ray.get_runtime_context().get_node_id()
        self._reader = _read_env(device, omp_threads) if here != driver_node else None
        self._env: dict[str, Any] | None = None

    def environment(self) -> dict[str, Any] | None:
        """This node's env (harness.env), or None on the driver's node (the run's env)."""
        if self._env is None and self._reader is not None:
            out, err = self._reader.communicate()
            if self._reader.returncode != 0:
                raise RuntimeError(f"reading the env failed on {socket.gethostname()}: {err.strip()[-300:]}")
            self._env = json.loads(out)
        return self._env

    def run(self, case: Case, ceilings: dict[str, Any] | None, profile: Any) -> Record:
        """The case's record, with this node's env_id. `ceilings` are the driver's machine's: on another
        node they are left out (no percent-of-peak columns) rather than put against other hardware."""
        env = self.environment()
        if env is None:
            return self._executor.run(case, ceilings, profile)
        return replace(self._executor.run(case, None, profile), env_id=env["env_id"])


def _read_env(device: str, omp_threads: str | None) -> subprocess.Popen:
    """harness.env's collect in a process of its own: reading a GPU's properties opens a CUDA context, which
    must not stay in the host beside its worker's. OMP_NUM_THREADS is the driver's: Ray sets it to
    the host's CPUs, which would make torch_threads (so env_id) differ from the driver's on one machine."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = omp_threads
    read = f"import json; from harness import env; print(json.dumps(env.collect({device!r}), default=str))"
    return subprocess.Popen([sys.executable, "-c", read], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@dataclass
class _Running:
    host: Any  # a CaseHost handle
    shape: Shape
    case: Case
    sent_at: float  # perf_counter
    sent_at_unix: float


class RayExecutor:
    """Cases spread over a Ray cluster, one per host at a time, as many at once as it holds.

    `address`: a cluster to join (host:port, ray://..., or "auto"); None starts a local one."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self.environments: dict[str, dict[str, Any]] = {}  # env_id -> env, of every node that ran a case
        self._started_ray = False
        self._idle: dict[Shape, list[Any]] = {}
        self._running: dict[Any, _Running] = {}  # by the ObjectRef of the case's record

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> RayExecutor:
        """Join the cluster (or start a local one); a one-line UserError if it cannot be reached."""
        if self.address and ":" in self.address and not self.address.startswith("ray://"):
            _probe(self.address)
        if ray.is_initialized():  # joined already (a test's cluster): use it as it is
            return self
        # seqbench's own settings (SEQBENCH_PLUGINS: which impls exist) hold on every node
        settings = {k: v for k, v in os.environ.items() if k.startswith("SEQBENCH_")}
        try:
            ray.init(address=self.address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", runtime_env={"env_vars": settings})
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise UserError(f"--ray-address {self.address}: cannot join the Ray cluster "
                            f"({_first_line(err)})") from None
        self._started_ray = True
        total = ray.cluster_resources()
        console.console.print(f"Ray: {'a local instance' if not self.address else self.address}, "
                              f"{len(ray.nodes())} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs",
                              markup=False, soft_wrap=True)
        return self

    def stream(self, jobs: Iterable[Job]) -> Iterator[Record]:
        """Each job's record as it finishes. A job is taken from `jobs` only once the one before it
        is sent, so what the caller decides as it hands out a job (pruning) sees the latest records."""
        if not ray.is_initialized():
            self.start()
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        smallest_cpus = min((r.get("CPU", 0.0) for r in nodes if r.get("CPU")), default=1.0)
        jobs, waiting, more = iter(jobs), None, True
        while True:
            while more:
                waiting = waiting or next(jobs, None)
                if waiting is None:
                    more = False
                elif (unplaceable := _no_node_for(shape_of(waiting[0], smallest_cpus), nodes)):
                    yield Record.error(waiting[0], unplaceable).timed(wall_s=0.0)
                    waiting = None
                elif self._send(waiting, shape_of(waiting[0], smallest_cpus)):
                    waiting = None
                else:
                    break  # no room until a case finishes
            if not self._running:
                return
            yield self._next_finished()

    def _send(self, job: Job, shape: Shape) -> bool:
        """Give the job to an idle host of its shape, or a new one if the cluster has room
        (ending idle hosts of other shapes to make it); False if it must wait."""
        host = self._idle.get(shape, []).pop() if self._idle.get(shape) else None
        while host is None and not self._has_room(shape):
            spare = next((hosts for hosts in self._idle.values() if hosts), None)
            if spare is None:
                return False
            ray.kill(spare.pop())
        if host is None:
            host = CaseHost.options(num_cpus=shape.cpus, num_gpus=shape.gpus).remote(
                "cuda" if shape.gpus else "cpu", os.environ.get("OMP_NUM_THREADS"), self._driver_node())
        case, ceilings, profile = job
        self._running[host.run.remote(case, ceilings, profile)] = _Running(
            host, shape, case, time.perf_counter(), time.time())
        return True

    def _driver_node(self) -> str:
        """The Ray node this driver runs on: hosts there take the run's env as theirs."""
        return ray.get_runtime_context().get_node_id()

    def _has_room(self, shape: Shape) -> bool:
        total = ray.cluster_resources()
        held = [r.shape for r in self._running.values()] + [s for s, hosts in self._idle.items() for _ in hosts]
        return shape.fits(total.get("CPU", 0.0) - sum(s.cpus for s in held),
                          total.get("GPU", 0.0) - sum(s.gpus for s in held))

    def _next_finished(self) -> Record:
        [done], _ = ray.wait(list(self._running), num_returns=1)
        running = self._running.pop(done)
        try:
            record = ray.get(done)
        except OutOfMemoryError as err:  # Ray's memory monitor ended the host
            record = Record.oom(running.case, f"Ray ended the worker for memory: {_first_line(err)}")
        except RayActorError as err:  # the host died (killed, its node lost): a new one takes the next case
            record = Record.error(running.case, f"the Ray worker died mid-case: {_first_line(err)}")
        except RayError as err:  # the host failed outside the case (its env unreadable): not used again
            ray.kill(running.host)
            record = Record.error(running.case, f"the Ray worker failed: {_first_line(err)}")
        else:
            self._idle.setdefault(running.shape, []).append(running.host)
            self._remember_env(running.host, record.env_id)
        return record.timed(wall_s=time.perf_counter() - running.sent_at, started_at=running.sent_at_unix)

    def _remember_env(self, host: Any, env_id: str | None) -> None:
        if env_id and env_id not in self.environments:
            self.environments[env_id] = ray.get(host.environment.remote())

    def close(self) -> None:
        """End every host (and its worker, which dies with it), and a Ray instance this started."""
        if not ray.is_initialized():
            return
        for host in [r.host for r in self._running.values()] + [h for hosts in self._idle.values() for h in hosts]:
            ray.kill(host)
        self._running.clear()
        self._idle.clear()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


def _no_node_for(shape: Shape, nodes: list[dict[str, float]]) -> str | None:
    """Why no node of the cluster can ever hold `shape`, or None."""
    if any(shape.fits(r.get("CPU", 0.0), r.get("GPU", 0.0)) for r in nodes):
        return None
    most = max(nodes, key=lambda r: (r.get("GPU", 0.0), r.get("CPU", 0.0)), default={})
    return (f"no node of the Ray cluster has {shape.cpus:g} CPUs and {shape.gpus:g} GPUs free to give "
            f"(the largest has {most.get('CPU', 0.0):g} CPUs, {most.get('GPU', 0.0):g} GPUs)")


def _probe(address: str) -> None:
    """A one-line UserError at once if nothing listens at host:port (Ray itself retries for a minute)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_S).close()
    except ValueError:
        raise UserError(f"--ray-address {address}: not host:port (e.g. 10.0.0.1:6379), ray://host:port, "
                        "or auto") from None
    except OSError as err:
        raise UserError(f"--ray-address {address}: cannot reach a Ray cluster there "
                        f"({err.strerror or err}); start one with `ray start --head`") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def default_address() -> str | None:
    """RAY_ADDRESS when set (a cluster to join), else None (a local instance)."""
    return os.environ.get("RAY_ADDRESS") or None
