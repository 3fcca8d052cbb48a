"""Shared fixtures: suite files written on the fly, and running the CLI in-process or as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "tests.fixtures.misbehaving"

TINY_MEASURE = {"warmup": 0, "min_reps": 3, "max_reps": 10, "noise_target": 0.2, "max_time_s": 0.05,
                "timeout_s": 60}


@pytest.fixture
def write_suite(tmp_path):
    """write_suite(dict) -> path of a suite YAML in a temp folder."""

    def write(suite: dict, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(suite, sort_keys=False))
        return path

    return write


def tiny_attention_suite(**overrides) -> dict:
    suite = {"name": "tiny", "workload": "op", "family": "attention", "device": "cpu",
             "impls": ["naive"], "sweep": {"seq_len": [16, 32]},
             "fixed": {"batch": 1, "heads": 2, "head_dim": 16}, "measure": dict(TINY_MEASURE)}
    suite.update(overrides)
    return suite


def harness_cli(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` as a user would, with the test impls available."""
    env = {**os.environ, "SEQBENCH_PLUGINS": PLUGINS, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


@pytest.fixture(autouse=True)
def _test_impls_registered(monkeypatch):
    """In-process tests see the misbehaving impls too."""
    monkeypatch.setenv("SEQBENCH_PLUGINS", PLUGINS)
    import tests.fixtures.misbehaving  # noqa: F401
