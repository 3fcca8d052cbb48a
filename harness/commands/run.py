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


def resolve_device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; valid: cpu")
    if requested in ("cpu", "cuda"):
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    # imported here, after the worker has started: together they take as long as the worker's own
    from harness import run_lock, runner, suite as suites

    suite = suites.load(args.suite, max_cases=args.max_cases)
    device = resolve_device(args.device or suite.device)
    suite = suites.for_device(suite, device)
    if args.check_only:  # recorded in the run's suite.yaml, so a resume keeps to it
        suite = suite.model_copy(update={"measure": suite.measure.model_copy(update={"check": True, "timed": False})})
    if args.profile or args.profile_stack:  # in suite.yaml too, so a resume profiles the rest
        suite = suite.model_copy(update={"measure": suite.measure.model_copy(
            update={"profile": True, "profile_stack": args.profile_stack})})
    if args.only:
        labels = {e.shown for e in suite.entries} | {e.name for e in suite.entries}
        unknown = [o for o in args.only if o not in labels]
        if unknown:
            raise UserError(f"--only {unknown[0]}: not an impl of {args.suite}; valid: {', '.join(sorted(labels))}")
    cases = suites.expand(suite, device, where=args.where, only=args.only)
    if args.dry_run:
        for case in cases:
            reason = suites.constraint_failure(suite, case)
            print(f"{case.index:4d}  {case.describe()}" + (f"  (skip: {reason})" if reason else ""))
        print(f"{len(cases)} cases on {device}")
        return 0
    if not cases:
        raise UserError(f"{args.suite}: no cases left after --only/--where")
    try:
        if args.resume:
            with run_lock.hold(args.resume):
                done, previous, env = runner.resume(args.resume, suite, device, force=args.force)
                return _run(runner.Run(suite, cases, args.resume, env, done, previous), device, executor)
        with runner.new_run(args.out, suite, device) as (run_dir, env):
            return _run(runner.Run(suite, cases, run_dir, env), device, executor)
    except RunStopped as stopped:
        stopped.resume_command = f"python -m harness run {args.suite} --resume {stopped.run_dir}"
        raise


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
