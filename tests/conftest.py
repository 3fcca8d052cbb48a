"""Shared fixtures: suite files written on the fly, the CLI run in-process or as a user
would, and a real small run (made in this process, so it takes seconds) with its report."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from harness import cli, runner, suite as suites, worker, workloads
from harness.case import Case
from harness.workloads.base import Prepared
from impls import registry
from impls.attention.naive import naive

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = "tests.fixtures.misbehaving"

TINY_MEASURE = {"warmup": 0, "min_reps": 3, "max_reps": 10, "noise_target": 0.2, "max_time_s": 0.05,
                "timeout_s": 60}


def make_case(workload: str, family: str, impl: str, *, device: str = "cpu", label: str | None = None,
              axes: tuple[str, ...] = (), measure: dict | None = None, **params) -> Case:
    """The Case a suite would make for these params: those the impl registered go to the impl."""
    own = registry.get(family, impl).params
    return Case(suite="test", workload=workload, family=family, impl=impl, label=label or impl, params=params,
                impl_params=tuple(k for k in params if k in own), axes=tuple(axes), device=device,
                measure=measure or {})


def prepare(case: Case) -> Prepared:
    """The case built by its workload, as a worker builds it (nothing timed, nothing checked)."""
    return workloads.get(case.workload).prepare(case, registry.get(case.family, case.impl))


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


def random_qkv(b: int, hq: int, hkv: int, n: int, m: int, d: int, seed: int = 0):
    """Seeded fp32 q (b, hq, n, d), k and v (b, hkv, m, d)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, hq, n, d, generator=gen), torch.randn(b, hkv, m, d, generator=gen),
            torch.randn(b, hkv, m, d, generator=gen))


def max_rel_err(out, expected) -> float:
    """Largest absolute difference over the reference's largest magnitude."""
    return float((out.double() - expected).abs().max() / expected.abs().max())


@pytest.fixture
def tiny_corpus(tmp_path, monkeypatch) -> Path:
    """The char corpus a short text; models trained on it (harness.workloads.draft_pair) cached
    under the folder returned."""
    from harness.quality import corpus
    from harness.workloads import draft_pair

    text_file = tmp_path / "text.txt"
    text_file.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    monkeypatch.setattr(draft_pair, "CACHE_DIR", tmp_path / "cache")
    load = corpus.load
    monkeypatch.setattr(corpus, "load", lambda: load(text_file))
    return tmp_path / "cache"


def harness_cli(*args: str, timeout: float = 300, env_extra: dict[str, str] | None = None,
                **popen) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` as a user would, with the test impls available."""
    env = {**os.environ, "SEQBENCH_PLUGINS": PLUGINS, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


def pytest_collection_finish(session) -> None:
    """The modules the tests import stay loaded for the session: frozen, the full collection
    before each memory pass (harness.measure.memory) scans only what tests make, as the worker
    freezes after its own imports (harness.executor). Unfrozen, each collection read ~250,000
    objects (0.2 s), and a 24-case run in this process spent most of its time there."""
    gc.collect()
    gc.freeze()


def pytest_unconfigure(config) -> None:
    """Unfrozen before the interpreter exits, so every object is finalized as usual (frozen,
    triton's bindings report their objects as leaked after pytest's summary)."""
    gc.unfreeze()


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap():
    """What earlier modules left alive (fixtures, caches, modules imported late) frozen too;
    collected first, so no garbage is frozen with it."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _test_impls_registered(monkeypatch):
    """In-process tests see the misbehaving impls too."""
    monkeypatch.setenv("SEQBENCH_PLUGINS", PLUGINS)
    import tests.fixtures.misbehaving  # noqa: F401


XSS_LABEL = "<script>alert(1)</script>"
XSS_REASON = "<img src=x onerror=alert(2)>"

SUITE = f"""
name: report-test
description: "tiny sweep for report tests <b>not bold</b> & <script>alert(3)</script>"
workload: op
family: attention
device: cpu
impls: [naive, sdpa_math, {{name: report_wrong, label: "{XSS_LABEL}"}}, report_broken]
baseline: naive
sweep:
  seq_len: [16, 48, 160]
  causal: [false, true]
fixed: {{batch: 1, heads: 4, head_dim: 16, precision: fp32}}
measure: {{warmup: 1, min_reps: 5, max_reps: 8, noise_target: 0.2, max_time_s: 0.02, timeout_s: 30, threads: 1}}
"""


def _wrong(q, k, v, *, causal: bool, scale=None):
    """Attention scaled by 1.5: fast and wrong, the case reports must never count as a speedup."""
    return naive(q, k, v, causal=causal, scale=scale) * 1.5


def _broken(q, k, v, *, causal: bool, scale=None):
    raise ValueError(XSS_REASON)



@pytest.fixture(scope="session")
def hostile_text() -> dict[str, str]:
    """The user-written strings small_run carries, which every page must show escaped."""
    return {"label": XSS_LABEL, "reason": XSS_REASON, "description": "<b>not bold</b>"}


class InProcessExecutor:
    """The runner's executor without the worker process: same records, no spawn start-up."""

    def start(self) -> InProcessExecutor:
        return self

    def run(self, case, ceilings=None, profile=None):
        return worker.execute(case, ceilings, profile)

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc) -> None:
        pass


def run_in_process(patch: pytest.MonkeyPatch) -> None:
    """Cases of runner.run, and of `harness run` (which starts its worker before anything else),
    run in this process."""
    from harness.commands import run as run_command

    patch.setattr(runner, "LocalExecutor", InProcessExecutor)
    patch.setattr(run_command, "LocalExecutor", InProcessExecutor)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """results/report-test-<time>/ from a real run of a 24-case suite, with a wrong impl
    (labelled with a script tag) and an impl that raises (its message an HTML tag)."""
    registry.load_all()
    registry.register("attention", "report_wrong", backward=False)(_wrong)
    registry.register("attention", "report_broken", backward=False)(_broken)
    root = tmp_path_factory.mktemp("run")
    (root / "suite.yaml").write_text(SUITE)
    threads = torch.get_num_threads()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runner, "LocalExecutor", InProcessExecutor)
            suite = suites.load(root / "suite.yaml")
            run_dir = runner.new_run_dir(root / "results", suite)
            env = runner.start(run_dir, suite, "cpu")
            runner.run(runner.Run(suite, suites.expand(suite, "cpu"), run_dir, env))
    finally:
        torch.set_num_threads(threads)
        for name in ("report_wrong", "report_broken"):
            registry._REGISTRY["attention"].pop(name, None)  # keep `list` and other tests unaware of them
    return run_dir


@pytest.fixture(scope="session")
def small_report(small_run, tmp_path_factory) -> Path:
    """The HTML report of small_run, written by the CLI."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert cli.main(["report", str(small_run), "-o", str(out)]) == 0
    return out
