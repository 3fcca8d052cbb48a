"""scripts/gpu_check.sh: its dry mode runs the GPU check's steps on this CPU at tiny sizes, so
the script is known to work before a GPU is lent; its suites expand on both devices."""
from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import suite as suites
from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
GPU_CHECK_SUITES = sorted((ROOT / "suites" / "gpu_check").glob("*.yaml"))
# Every kind of step; the other three suites (attention_long, decoding, serving) run through
# the same run_suite as `attention`, so the test leaves them out to stay near a minute on a
# loaded 2-core machine (the whole dry run takes two; the closing note of issue 20 has it).
STEPS = "packages doctor calibrate attention timer claims_runs claims_table"


def _script(*args: str, env_extra: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_STEPS", "GPU_CHECK_DRY")}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env={**env, **env_extra}, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow  # ~60 s on a loaded 2-core machine: seven python processes, Triton interpreted
def test_dry_mode_runs_every_kind_of_step_on_the_cpu_and_writes_the_reference_folders(tmp_path):
    out = tmp_path / "reference"
    run = _script("--dry", env_extra={"GPU_CHECK_OUT": str(out), "GPU_CHECK_STEPS": STEPS, "OUT": str(tmp_path)})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    (summary,) = out.glob("dry-cpu-*-summary")
    prefix = summary.name.removesuffix("-summary")
    with open(summary / "steps.tsv") as handle:
        steps = list(csv.DictReader(handle, delimiter="\t"))
    assert [s["step"] for s in steps] == STEPS.split()
    assert all(s["exit"] == "0" and int(s["took_s"]) <= int(s["budget_s"]) for s in steps), steps
    doctor = json.loads((summary / "doctor.json").read_text())
    assert not [r for r in doctor["rows"] if r["status"] == "fail"]
    # the interpreter ran the Triton kernels: forward and backward, against their references
    assert any(r["impl"] == "triton_flash" and r["status"] == "pass" for r in doctor["rows"])
    assert any(r["impl"] == "mamba_triton" and r["status"] == "pass" for r in doctor["rows"])
    assert list((out / f"{prefix}-calibration").glob("calibration-*.json"))
    for name in ("gpu_check_attention", "claims_triton_flash"):
        records = [json.loads(line) for line in (out / f"{prefix}-{name}" / "records.jsonl").read_text().splitlines()]
        assert records and {r["status"] for r in records} <= {"ok", "skipped"}, name
        assert any(r["impl"] == "triton_flash" and r["status"] == "ok" and r["samples_ms"] for r in records)
    assert "harness ms" in (summary / "timer_agreement.txt").read_text()
    assert "triton_flash_vs_sdpa_flash" in (summary / "claims.md").read_text()
    assert "== claims_table (budget" in (summary / "gpu_check.log").read_text()
    assert (tmp_path / f"gpu_check-{prefix}.tar.gz").stat().st_size > 0


def test_without_pydantic_the_check_stops_and_says_how_to_carry_wheels(tmp_path):
    """The GPU machine's image has no pydantic: one clear message and exit 3, not a traceback
    from the middle of a step (a sitecustomize hides pydantic from the script's python)."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['pydantic'] = None\n")
    run = _script(env_extra={"PYTHONPATH": str(tmp_path), "GPU_CHECK_OUT": str(tmp_path / "out")}, timeout=120)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "missing Python modules: pydantic" in run.stderr
    assert "scripts/gpu_check.sh --wheels" in run.stderr and "carry=['.whl']" in run.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unknown_argument_is_one_line_and_exit_2(tmp_path):
    run = _script("--gpu", env_extra={"GPU_CHECK_OUT": str(tmp_path)}, timeout=30)
    assert run.returncode == 2 and "valid: --dry, --wheels" in run.stderr


@pytest.mark.parametrize("path", GPU_CHECK_SUITES, ids=lambda p: p.stem)
def test_each_gpu_check_suite_expands_to_its_headline_on_cuda_and_tiny_on_the_cpu(path: Path):
    suite = suites.load(path)
    assert "cpu" in suite.devices, f"{path.name}: no devices.cpu section (the dry run's sizes)"
    on_gpu = suites.expand(suites.for_device(suite, "cuda"), "cuda")
    on_cpu = suites.expand(suites.for_device(suite, "cpu"), "cpu")
    assert 0 < len(on_gpu) <= 30 and 0 < len(on_cpu) <= len(on_gpu)
    for key in ("seq_len", "d_model", "prompt_len", "n_requests"):
        gpu_sizes = [c.params[key] for c in on_gpu if key in c.params]
        cpu_sizes = [c.params[key] for c in on_cpu if key in c.params]
        if gpu_sizes:
            assert max(cpu_sizes) <= 32 < max(gpu_sizes), (path.name, key)
