"""`run SUITE`: run a suite's sweep and write a run folder."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import suite_file
from harness.errors import RunStopped, UserError
from harness.executor import LocalExecutor

if TYPE_CHECKING:
    from harness.runner import Run

NAME = "run"
HELP = "run a suite (YAML) and write results/<suite>-<time>/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", type=Path, help="suite file, e.g. suites/smoke.yaml")
    parser.add_argument("--only", action="append", metavar="IMPL", help="run only this impl (repeatable)")
    parser.add_argument("--where", help="keep cases matching, e.g. 'seq_len<=4096 and precision==fp16'")
    parser.add_argument("--dry-run", action="store_true", help="list the cases, run nothing")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: the suite's, else cuda if present")
    parser.add_argument("--out", type=Path, default=Path("results"), help="parent folder of the run folder")
    parser.add_argument("--resume", type=Path, metavar="RUN", help="finish an interrupted run folder")
    parser.add_argument("--force", action="store_true",
                        help="with --resume: finish the run even though the suite's measure block changed")
    parser.add_argument("--check-only", action="store_true",
                        help="the correctness check of every case against its reference, no timing")
    parser.add_argument("--profile", action="store_true",
                        help="after timing each case, a torch.profiler pass: trace, operator table, where the time "
                             "goes (results/<run>/profile/)")
    parser.add_argument("--profile-stack", action="store_true", help="with --profile: record Python stacks too")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: one case at a time on this machine; ray: cases spread over a Ray cluster "
                             "(pip install seqbench[ray])")
    parser.add_argument("--ray-address", metavar="HOST:PORT",
                        help="with --executor ray: the cluster to join (default: RAY_ADDRESS, else a local "
                             "Ray instance is started)")
    parser.add_argument("--max-cases", type=int, default=suite_file.MAX_CASES, metavar="N",
                        help=f"refuse a suite that expands to more cases (default {suite_file.MAX_CASES:,})")


def main(args: argparse.Namespace) -> int:
    if args.max_cases < 1:
        raise UserError(f"--max-cases {args.max_cases}: must be at least 1")
    if args.force and not args.resume:
        raise UserError("--force: only with --resume RUN")
    if args.check_only and (args.profile or args.profile_stack):
        raise UserError("--profile: profiles a timed case, and --check-only times nothing; drop one of them")
    if args.ray_address and args.executor != "ray":
        raise UserError("--ray-address: only with --executor ray")
    with _executor(args) as executor:
        if not args.dry_run:
            executor.start()  # its imports (torch: a second or more) overlap this process's own
        return _plan_and_run(args, executor)


def _executor(args: argparse.Namespace) -> Any:
    """The executor --executor names (Ray imported only when asked for)."""
    if args.executor == "local":
        return LocalExecutor()
    try:
        from harness import ray_executor
    except ImportError as err:
        raise UserError(f"--executor ray: Ray is not installed ({err}); pip install 'seqbench[ray]'") from None
    return ray_executor.RayExecutor(args.ray_address or ray_executor.default_address())


def _plan_and_run(args: argparse.Namespace, executor: Any) -> int:
    # imported here, after the worker has started: pydantic and the suite's models overlap its imports
    from harness import plan

    request = plan.Request(args.suite, args.device, args.max_cases, args.check_only, args.profile,
                           args.profile_stack, tuple(args.only or ()), args.where)
    if args.dry_run or not hasattr(executor, "plan"):  # made here (torch imported here)
        planned = plan.make(request)
    else:  # made in the worker, which imports torch anyway; meanwhile this process reads what the end needs
        planned = executor.plan(request, meanwhile=_import_for_the_end)
    suite, device, cases = planned.suite, planned.device, planned.cases
    if args.dry_run:
        for case in cases:
            reason = planned.excluded.get(case.id)
            print(f"{case.index:4d}  {case.describe()}" + (f"  (skip: {reason})" if reason else ""))
        print(f"{len(cases)} cases on {device}")
        return 0
    if not cases:
        raise UserError(f"{args.suite}: no cases left after --only/--where")
    from harness import run_lock, runner

    try:
        if args.resume:
            with run_lock.hold(args.resume):
                done, previous, env = runner.resume(args.resume, suite, device, force=args.force)
                return _run(runner.Run(suite, cases, args.resume, env, done, previous, planned.excluded), device,
                            executor)
        with runner.new_run(args.out, suite, device, planned.torch_facts) as (run_dir, env):
            return _run(runner.Run(suite, cases, run_dir, env, excluded=planned.excluded), device, executor)
    except RunStopped as stopped:
        stopped.resume_command = f"python -m harness run {args.suite} --resume {stopped.run_dir}"
        raise


def _import_for_the_end() -> None:
    """Read while the worker imports torch, rather than between cases or after the last: the
    records' module (numpy, for their statistics; 0.15 s at the first record) and pandas and
    pyarrow for the table and summary at the end (half a second)."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import harness.record  # noqa: F401


def _run(job: Run, device: str, executor: Any) -> int:
    from harness import console, results, runner

    suite, todo = job.suite, sum(c.id not in job.done for c in job.cases)
    console.console.print(f"{suite.name}: {todo} cases on {device} -> {job.run_dir}", markup=False, soft_wrap=True)
    with console.progress(todo) as advance:
        runner.run(job, on_record=advance, executor=executor)
    frame = results.load(job.run_dir)
    if suite.measure.timed:
        console.console.print(console.summary_table(frame, f"{suite.name}: median latency ({device})"))
    else:
        console.console.print(console.check_table(frame, f"{suite.name}: checks against the reference ({device})"))
    marks = console.legend(frame)
    if marks:
        console.console.print(marks, markup=False)
    console.console.print(f"{console.status_counts(frame)}; results in {job.run_dir}", markup=False, soft_wrap=True)
    return 0
