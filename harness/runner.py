"""Run a suite's cases into a run folder, one record at a time."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from harness import env as environment
from harness import console, results, worker
from harness.case import Case
from harness.errors import UserError
from harness.executor import LocalExecutor
from harness.measure import calibrate
from harness.pruning import Pruner
from harness.suite import Suite, constraint_failure
from impls import registry


# What defines a run's cases: a resumed run must agree with its suite.yaml on these.
CASE_KEYS = ("name", "workload", "family", "impls", "sweep", "zip", "fixed", "constraints")


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


def start(run_dir: Path, suite: Suite, device: str) -> dict[str, Any]:
    """Write suite.yaml and env.json into a new run folder; return the env."""
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(suite.model_dump(), sort_keys=False))
    env = environment.collect(device)
    (run_dir / "env.json").write_text(json.dumps(env, indent=2, default=str))
    return env


def resume(run_dir: Path, suite: Suite, device: str) -> tuple[set[str], list[dict[str, Any]], dict[str, Any]]:
    """Ids of the cases already recorded in `run_dir`, those records, and its env.

    Refused unless the run is of this suite (the same cases) on this device: the
    records of two suites or two devices must never share a run folder."""
    env = results.env(run_dir)
    if not env:
        raise UserError(f"--resume {run_dir}: not a run folder (no readable env.json)")
    if env.get("device") != device:
        raise UserError(f"--resume {run_dir}: that run is on {env.get('device')}, not {device}; "
                        f"resume it with --device {env.get('device')}")
    _check_same_suite(run_dir, suite)
    records = results.read_records(run_dir) if (run_dir / results.RECORDS).exists() else []
    return {r["case_id"] for r in records}, records, env


def _check_same_suite(run_dir: Path, suite: Suite) -> None:
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


def unavailable(case: Case) -> str | None:
    """Why the case's impl cannot run here, decided before a worker is bothered."""
    ok, reason = registry.available(registry.get(case.family, case.impl), case.device, case.precision)
    return None if ok else reason


def run(suite: Suite, cases: list[Case], run_dir: Path, env: dict[str, Any],
        done: set[str] = frozenset(), previous: list[dict[str, Any]] = (),
        on_record: Callable[[dict[str, Any]], None] = lambda r: None) -> None:
    """Run every case not in `done`; each record is on disk before the next case starts."""
    pruner = Pruner(suite.measure.budget_s)
    # the device's measured ceilings (`harness calibrate`), for the percent-of-peak columns
    folders = calibrate.search_folders(run_dir.parent)
    ceilings = calibrate.find_ceilings(env["env_id"], folders)
    if ceilings is None:
        console.console.print(calibrate.MISSING.format(env_id=env["env_id"], folders=", ".join(map(str, folders))),
                              soft_wrap=True, markup=False)
    for record in previous:
        pruner.observe(record)
    writer = results.RecordWriter(run_dir)
    executor = LocalExecutor()
    try:
        for case in cases:
            if case.id in done:
                continue
            reason = (constraint_failure(suite, case) or unavailable(case)
                      or pruner.reason(case.label, case.params, case.axes))
            if reason:
                record = worker.base_record(case) | {"status": "skipped", "reason": reason, "wall_s": 0.0}
            else:
                measured = replace(case, measure=case.measure | {"ceilings": ceilings}) if ceilings else case
                record = executor.run(measured)
            record["env_id"] = env["env_id"]
            writer.append(record)
            pruner.observe(record)
            on_record(record)
    finally:
        executor.close()
        writer.close()
    results.write_table(run_dir)
