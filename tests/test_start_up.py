"""What `harness run` imports, and where: the runner process never imports torch (its worker
checks the suite and plans the cases), and no impl imports triton until a Triton kernel runs.
Each is a second or a third of a second of every run's start."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import ROOT


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_run_command_starts_its_worker_before_importing_torch_or_pandas():
    """The worker's imports overlap the runner's only if the runner reaches the spawn first."""
    probe = ("import sys; from harness import cli; cli.build_parser('run'); import harness.executor; "
             "print(sorted(m for m in ('torch', 'pandas', 'scipy.stats') if m in sys.modules))")
    printed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == "[]"
    probe = ("import sys; import harness.runner; "
             "print(sorted(m for m in ('pandas', 'pyarrow', 'scipy.stats', 'torch') if m in sys.modules))")
    printed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == "[]"  # what only the worker, or the end of a run, needs


def test_the_runner_process_never_imports_torch(tmp_path):
    seen = _python(f"""
        import json, sys
        from harness.cli import main
        code = main(["run", "suites/smoke.yaml", "--only", "naive", "--where", "seq_len == 64 and not causal",
                     "--out", {str(tmp_path)!r}])
        print(json.dumps([code] + [m for m in ("torch", "triton") if m in sys.modules]))
    """)
    assert json.loads(seen) == [0]
    run = next(tmp_path.iterdir())
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"]
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] and env["torch_threads"] >= 1  # read by the worker


def test_the_runner_says_what_the_worker_found_wrong_in_one_line(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\nworkload: op\nfamily: attention\nimpls: [nave]\nsweep: {seq_len: [64]}\n")
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(suite), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {suite}: impls[0]: unknown attention impl 'nave' "
                                   "(did you mean naive, naive_padded?)")
    assert not (tmp_path / "out").exists()


def test_no_impl_imports_triton_until_a_kernel_runs():
    seen = _python("""
        import sys
        from impls import registry
        from harness import workloads
        registry.load_all()
        workloads.names()
        print("triton" in sys.modules, "triton_flash" in registry.names("attention"))
    """)
    assert seen == "False True"
