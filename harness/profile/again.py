"""Profile chosen cases of an existing run again: each case is rebuilt from the run's
suite.yaml, timed (so the profiler's overhead is against a median of this machine, now) and
profiled in a worker; only its profile folder is written, records.jsonl is left as it was."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

from harness import results, run_lock, suite as suites
from harness.case import Case
from harness.errors import UserError
from harness.executor import LocalExecutor
from harness.profile import store

PROFILABLE = ("ok", "wrong")  # statuses whose case ran to the end, so can be profiled


def chosen_cases(run_dir: Path, ids: list[str] | None) -> list[Case]:
    """The run's cases named by `ids` (every ok or wrong one if none), as they ran."""
    if not (run_dir / results.RECORDS).exists() or not (run_dir / "suite.yaml").exists():
        raise UserError(f"{run_dir}: not a run folder (no records.jsonl and suite.yaml)")
    device = results.env(run_dir).get("device", "cpu")
    cases = {case.id: case for case in suites.expand(suites.load(run_dir / "suite.yaml"), device)}
    records = {record["case_id"]: record for record in results.read_records(run_dir)}
    statuses = {case_id: record["status"] for case_id, record in records.items()}
    # the index the run gave each case (a run made with --where numbers only the cases it kept)
    cases = {case_id: dataclasses.replace(case, index=records[case_id].get("index", case.index))
             if case_id in records else case for case_id, case in cases.items()}
    if not ids:
        return [case for case_id, case in cases.items() if statuses.get(case_id) in PROFILABLE]
    for case_id in ids:
        if case_id not in cases:
            known = ", ".join(list(cases)[:5]) + (", ..." if len(cases) > 5 else "")
            raise UserError(f"--case {case_id}: not a case of {run_dir} (its case ids: {known})")
        if statuses.get(case_id) not in PROFILABLE:
            raise UserError(f"--case {case_id}: recorded as {statuses.get(case_id, 'not run')}, not ok or wrong; "
                            "only a case that ran can be profiled")
    return [cases[case_id] for case_id in ids]


def profile_again(run_dir: Path, cases: list[Case], with_stack: bool) -> Iterator[tuple[Case, str]]:
    """Profile each case in a worker, holding the run folder; yields (case, its outcome: 'ok'
    or why no profile was written)."""
    with run_lock.hold(run_dir):
        executor = LocalExecutor()
        try:
            for case in cases:
                measure = case.measure.model_copy(update={"profile": True, "profile_stack": with_stack})
                case = dataclasses.replace(case, measure=measure)
                request = store.request(run_dir, case)
                record = executor.run(case, None, request)
                if record.status not in PROFILABLE:
                    yield case, f"{record.status}: {record.reason}"
                else:
                    found = store.summary(request.out_dir)
                    yield case, found.get("error", "ok") if found else "no profile was written"
        finally:
            executor.close()
