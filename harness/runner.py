"""Run a suite's cases into a run folder, one record at a time."""
from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from pydantic import ValidationError

from harness import env as environment
from harness import console, results, run_lock
from harness.case import Case
from harness.errors import RunStopped, UserError
from harness.executor import LocalExecutor
from harness.measure import ceilings as calibrations
from harness.profile import store as profiles
from harness.pruning import Pruner
from harness.record import Record
from harness.suite import Measure, Suite, constraint_failure


# What defines a run's cases: a resumed run must agree with its suite.yaml on these.
CASE_KEYS = ("name", "workload", "family", "impls", "sweep", "zip", "fixed", "constraints")
RESUMES = "resumes.yaml"  # what each resume forced past a changed measure block (--force)
ENVS = "envs"  # envs/<env_id>.json: the env of each node whose env_id differs from env.json's


def new_run_dir(out: Path, suite: Suite) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = out / f"{suite.name}-{stamp}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give the folder to put run folders in")
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UserError(f"--out {out}: {run_dir.name} exists already (a run of this suite started "
                        "this second); start again") from None
    except OSError as err:
        raise UserError(f"--out {out}: cannot create {run_dir}: {err.strerror or err}") from None
    return run_dir


def start(run_dir: Path, suite: Suite, device: str, torch_facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write suite.yaml and env.json into a new run folder; return the env (`torch_facts`: as a
    worker read them, harness.env.torch_facts; read here when None).

    If they cannot be written (disk full, a read-only folder) the folder is removed,
    since nothing was measured, and the error is one line (exit status 2)."""
    try:
        (run_dir / "suite.yaml").write_text(yaml.safe_dump(suite.model_dump(), sort_keys=False))
        env = environment.collect(device, torch_facts)
        (run_dir / "env.json").write_text(json.dumps(env, indent=2, default=str))
    except OSError as err:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise UserError(f"{run_dir}: cannot write the run folder ({err.strerror or err}); nothing was "
                        "measured, and the folder is removed") from None
    return env


@contextmanager
def new_run(out: Path, suite: Suite, device: str,
            torch_facts: dict[str, Any] | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A new run folder, owned (run.lock) for the block, with suite.yaml and env.json written.
    If it cannot be made (disk full, read-only) nothing is left behind: the run folder, and
    `out` if this made it, are removed, and the error is one line (exit status 2)."""
    made_out = not out.exists()
    run_dir = new_run_dir(out, suite)
    with ExitStack() as owned:
        try:
            owned.enter_context(run_lock.hold(run_dir))
            env = start(run_dir, suite, device, torch_facts)
        except UserError:
            owned.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            if made_out:
                with suppress(OSError):  # only if empty: another run may have begun in it meanwhile
                    out.rmdir()
            raise
        yield run_dir, env


def resume(run_dir: Path, suite: Suite, device: str,
           force: bool = False) -> tuple[set[str], list[dict[str, Any]], dict[str, Any]]:
    """Ids of the cases already recorded in `run_dir`, those records, and its env.

    Refused unless the run is of this suite (the same cases) on this device: the
    records of two suites or two devices must never share a run folder. A changed
    measure block is refused too, unless `force`: then what changed is printed and
    noted in resumes.yaml, since the later records are measured differently."""
    env = results.env(run_dir)
    if not env:
        raise UserError(f"--resume {run_dir}: not a run folder (no readable env.json)")
    if env.get("device") != device:
        raise UserError(f"--resume {run_dir}: that run is on {env.get('device')}, not {device}; "
                        f"resume it with --device {env.get('device')}")
    saved = _check_same_suite(run_dir, suite)
    records = results.read_records(run_dir) if (run_dir / results.RECORDS).exists() else []
    changes = _measure_changes(saved, suite)
    if changes and not force:
        raise UserError(f"--resume {run_dir}: the suite's measure differs from the run's suite.yaml "
                        f"({'; '.join(changes)}); resume with the settings the run started with, or add "
                        f"--force to finish it under the new ones (noted in {RESUMES})")
    if changes:
        _note_forced_resume(run_dir, changes, len(records))
    return {r["case_id"] for r in records}, records, env


def _measure_changes(saved: dict[str, Any], suite: Suite) -> list[str]:
    """'key old -> new' for each measure setting that differs from the run's suite.yaml
    (a setting added to seqbench since, at its default, is no change)."""
    before = saved.get("measure") if isinstance(saved.get("measure"), dict) else {}
    try:
        before = Measure.model_validate(before).model_dump()
    except ValidationError:
        pass  # written by another version of seqbench: compare what it says
    after = suite.measure.model_dump()
    return [f"{key} {before.get(key)!r} -> {after.get(key)!r}"
            for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]


def _note_forced_resume(run_dir: Path, changes: list[str], recorded: int) -> None:
    path = run_dir / RESUMES
    try:
        notes = yaml.safe_load(path.read_text()) if path.exists() else []
        notes = (notes if isinstance(notes, list) else []) + [{
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "records_before": recorded, "measure_changes": changes}]
        path.write_text(yaml.safe_dump(notes, sort_keys=False))
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot note the forced resume ({err}); nothing was run") from None
    console.console.print(f"--force: the cases after the first {recorded} run under a changed measure block "
                          f"({'; '.join(changes)}); noted in {path}", markup=False, soft_wrap=True)


def _check_same_suite(run_dir: Path, suite: Suite) -> dict[str, Any]:
    try:
        saved = yaml.safe_load((run_dir / "suite.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise UserError(f"--resume {run_dir}: not a run folder (no readable suite.yaml)") from None
    saved = saved if isinstance(saved, dict) else {}
    if saved.get("name") != suite.name:
        raise UserError(f"--resume {run_dir}: that run is of suite '{saved.get('name')}', not '{suite.name}'")
    current = suite.model_dump()
    for key in CASE_KEYS:
        if saved.get(key) != current[key]:
            raise UserError(f"--resume {run_dir}: the suite's {key} differs from the run's suite.yaml; "
                            "resume with the suite file the run was started with")
    return saved


@dataclass
class Run:
    """What the runner runs: the suite as it runs on its device, its cases, the run folder with
    its env, for a resumed run the ids and records already there, and the constraints' verdicts."""

    suite: Suite
    cases: list[Case]
    run_dir: Path
    env: dict[str, Any]
    done: set[str] = field(default_factory=set)
    previous: list[dict[str, Any]] = field(default_factory=list)
    # case id -> why the suite's constraints leave it out, where the plan said (harness.plan: then
    # this process needs no workload, and no torch, to read the constraints); None: read here
    excluded: dict[str, str] | None = None


def run(job: Run, on_record: Callable[[dict[str, Any]], None] = lambda r: None,
        executor: Any = None) -> None:
    """Run every case not in `job.done` (in `executor`, perhaps started already: a LocalExecutor
    by default, or one that runs several cases at once, like harness.ray_executor's; it is
    closed at the end); each record is on disk as soon as its case ends.
    The run folder is owned (run.lock) while records are written; a folder that cannot be
    written any more stops the run with RunStopped, the records so far kept."""
    suite, run_dir, env_id = job.suite, job.run_dir, job.env["env_id"]
    pruner = Pruner(suite.measure.budget_s)
    # the device's measured ceilings (`harness calibrate`), for the percent-of-peak columns
    folders = calibrations.search_folders(run_dir.parent)
    ceilings = calibrations.find_ceilings(env_id, folders)
    if ceilings is None:
        console.console.print(calibrations.MISSING.format(env_id=env_id, folders=", ".join(map(str, folders))),
                              soft_wrap=True, markup=False)
    for record in job.previous:
        pruner.observe(record)
    saved, total = len(job.previous), len(job.done | {c.id for c in job.cases})
    started: dict[str, float] = {}
    envs_saved = {env_id}

    def save(measured: Record) -> None:
        nonlocal saved
        taken_up = started.pop(measured.case.id)  # an executor that queues cases says when it sent one
        record = measured.timed(started_at=measured.started_at or taken_up).to_json(env_id)
        try:
            _save_env(run_dir, record["env_id"], getattr(executor, "environments", {}), envs_saved)
            writer.append(record)
        except OSError as err:
            raise RunStopped(f"cannot write {writer.path} ({err.strerror or err}); {saved} of {total} "
                             "cases are saved there, those in flight are lost", run_dir) from None
        saved += 1
        pruner.observe(record)
        on_record(record)

    def jobs() -> Iterator[tuple[Case, dict[str, Any] | None, Any]]:
        """The cases to measure, each decided (skipped, pruned) when the executor takes it up."""
        for case in (c for c in job.cases if c.id not in job.done):
            started[case.id] = time.time()
            # an impl that cannot run here is the worker's to say (the runner has no torch)
            excluded = constraint_failure(suite, case) if job.excluded is None else job.excluded.get(case.id)
            reason = excluded or pruner.reason(case.label, case.params, case.axes)
            if reason:
                save(Record.skipped(case, reason).timed(wall_s=0.0))
            else:
                yield case, ceilings, profiles.request(run_dir, case)

    with run_lock.hold(run_dir):
        writer = _writer(run_dir)
        executor = executor or LocalExecutor()
        try:
            for measured in _stream(executor, jobs()):
                save(measured)
        finally:
            executor.close()
            writer.close()
        try:
            results.write_table(run_dir)
        except OSError as err:
            raise RunStopped(f"cannot write {run_dir / results.TABLE} ({err.strerror or err}); all {saved} "
                             f"records are saved in {results.RECORDS}, which report and compare read",
                             run_dir) from None


def _stream(executor: Any, jobs: Iterator[tuple[Case, dict[str, Any] | None, Any]]) -> Iterator[Record]:
    """Records as cases end: the executor's own `stream` where it runs several at once, else its
    `run`, one case after another."""
    if hasattr(executor, "stream"):
        yield from executor.stream(jobs)
        return
    for case, ceilings, profile in jobs:
        yield executor.run(case, ceilings, profile)


def _save_env(run_dir: Path, env_id: str, environments: dict[str, dict[str, Any]], saved: set[str]) -> None:
    """envs/<env_id>.json, once, for a record measured in an env other than the run's (a node of a
    Ray cluster), so that mixed machines are told apart."""
    if env_id in saved or env_id not in environments:
        return
    folder = run_dir / ENVS
    folder.mkdir(exist_ok=True)
    (folder / f"{env_id}.json").write_text(json.dumps(environments[env_id], indent=2, default=str))
    saved.add(env_id)


def _writer(run_dir: Path) -> results.RecordWriter:
    """The run's record writer, having mended a last line a killed run left without its newline."""
    try:
        writer = results.RecordWriter(run_dir)
    except OSError as err:
        raise RunStopped(f"cannot write {run_dir / results.RECORDS} ({err.strerror or err}); nothing more "
                         "was run", run_dir) from None
    if writer.note:
        console.console.print(writer.note, markup=False, soft_wrap=True)
    return writer
