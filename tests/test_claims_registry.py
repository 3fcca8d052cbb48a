"""Every registered claim refers to suites, impls and parameters that exist, cites a primary
source with a locator (or says it is a project target), and its suite runs where it must: a
GPU claim's suite has a devices.cuda section that expands to the labels it judges; every claim
a CPU can check is judged end to end here, on its suite shrunk by the claim's `test` block."""
from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest
import torch

from harness import results, runner, suite as suites
from harness.claims import model
from harness.claims.evaluate import JUDGED, applicable, evaluate
from harness.expr import Expression
from tests.conftest import run_in_process

CLAIMS = model.load()
# Timing settings for the end-to-end test: one timed call is enough for a value, and a value
# (not which verdict it gives at these sizes) is what the test checks.
TEST_MEASURE = {"warmup": 0, "min_reps": 1, "max_reps": 1, "max_time_s": 0.01, "noise_target": 0.5, "threads": 1,
                "budget_s": None}


def suite_names(suite: suites.Suite) -> tuple[set[str], set[str]]:
    """(names, words) an expression over the suite's records may use."""
    labels = {e.shown for e in suite.entries}
    return suites._known_names(suite) | set(suite.fixed) | {"device", "status"}, suites._words(suite) | labels


def labels(claim: model.Claim) -> set[str]:
    metric = claim.metric
    named = {metric.numerator, metric.denominator or metric.numerator}
    return named | ({metric.expected.target, metric.expected.draft} if metric.expected else set())


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_refers_to_a_suite_its_impls_and_params(claim):
    suite = suites.load(claim.suite_path)
    metric = claim.metric
    assert labels(claim) <= {e.shown for e in suite.entries}
    names, words = suite_names(suite)
    test = claim.test or model.TestScale()
    wheres = [metric.where, metric.numerator_where, metric.denominator_where, test.where, test.metric_where]
    wheres += [metric.expected.target_where, metric.expected.draft_where] if metric.expected else []
    for text in wheres:
        if text:
            Expression(text, names, words)  # raises on an unknown name
    axes = [metric.axis] if metric.axis else []
    axes += [claim.claimed_at.axis] if claim.claimed_at else []
    axes += [metric.repeats] if metric.repeats else []
    for key in metric.match + axes:
        assert key in names, f"{claim.id}: {key} is not a parameter of {claim.suite}"
    on_cpu = suites.for_device(suite, "cpu")
    assert set(test.sweep) <= set(on_cpu.sweep), f"{claim.id}: test.sweep names an axis {claim.suite} does not sweep"
    given = set(on_cpu.fixed) | set(on_cpu.sweep) | {k for group in on_cpu.zip for k in group}
    assert set(test.params) <= given, f"{claim.id}: test.params names a param {claim.suite} does not give"


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_cites_a_primary_source_with_a_locator_or_is_a_project_target(claim):
    if claim.kind == "target":
        assert claim.locator == "project target" and claim.source.startswith("seqbench")
    else:
        assert claim.locator and claim.locator != "project target" and claim.published
        assert not claim.source.startswith("seqbench"), f"{claim.id}: a published claim cites a paper or README"


def test_the_registry_holds_at_least_45_published_claims():
    assert sum(c.kind == "published" for c in CLAIMS) >= 45


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.needs.device == "cuda"], ids=lambda c: c.id)
def test_a_gpu_claims_suite_is_ready_to_run_on_a_gpu(claim):
    """Its suite has a devices.cuda section, which expands (on a CPU too) into cases of every
    label the claim judges, at the points the claim's filters select."""
    suite = suites.load(claim.suite_path)
    assert "cuda" in suite.devices, f"{claim.suite}: no devices.cuda section"
    cases = suites.expand(suite, "cuda")
    shown = {c.label for c in cases}
    assert labels(claim) <= shown, f"{claim.id}: {labels(claim) - shown} not among the cuda cases"
    metric = claim.metric
    if metric.where:
        names, words = suite_names(suite)
        keep = Expression(metric.where, names | {"label", "impl"}, words)
        assert any(keep({**c.params, "device": "cuda", "label": c.label, "impl": c.impl}) for c in cases), \
            f"{claim.id}: no cuda case where {metric.where}"


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_every_claim_a_cpu_can_check_is_covered_end_to_end(claim):
    assert (claim.test is not None) == (applicable(claim, "cpu") is None), \
        f"{claim.id}: a claim is tested on the CPU exactly when it needs no GPU"


def cpu_claims_by_suite() -> dict[str, list[model.Claim]]:
    grouped = defaultdict(list)
    for claim in CLAIMS:
        if claim.test and applicable(claim, "cpu") is None:
            grouped[claim.suite].append(claim)
    return grouped


def test_claims_of_one_suite_shrink_it_alike():
    for path, claims in cpu_claims_by_suite().items():
        for part in ("sweep", "params"):
            assert len({repr(sorted(getattr(c.test, part).items())) for c in claims}) == 1, (path, part)


def shrunk(path: str, claims: list[model.Claim]) -> tuple[suites.Suite, str | None]:
    """The suite on the CPU as the claims' test blocks shrink it, and the cases they need."""
    suite = suites.for_device(suites.load(claims[0].suite_path), "cpu")
    scale = claims[0].test
    sweep = {**suite.sweep, **scale.sweep}
    sweep = {k: [scale.params[k]] if k in scale.params else values for k, values in sweep.items()}
    zipped = [{k: [scale.params[k]] * len(values) if k in scale.params else values for k, values in group.items()}
              for group in suite.zip]  # points that now coincide run once (expand drops repeats)
    suite = suite.model_copy(update={"sweep": sweep, "zip": zipped, "fixed": {**suite.fixed, **{
        k: v for k, v in scale.params.items() if k in suite.fixed}},
        "measure": suite.measure.model_copy(update=TEST_MEASURE)})
    wheres = [c.test.where for c in claims]
    return suite, None if None in wheres else " or ".join(f"({w})" for w in wheres)


def at_test_sizes(claim: model.Claim) -> model.Claim:
    if claim.test.metric_where is None:
        return claim
    return claim.model_copy(update={"metric": claim.metric.model_copy(update={"where": claim.test.metric_where})})


@pytest.fixture
def in_process(monkeypatch):
    """Cases run in this process: the worker's code without its start-up (seconds per suite)."""
    run_in_process(monkeypatch)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # a case sets the thread count it was measured with


@pytest.mark.slow
@pytest.mark.parametrize("suite_path", sorted(cpu_claims_by_suite()))
def test_cpu_claims_get_a_measured_verdict(suite_path, tmp_path, in_process):
    claims = cpu_claims_by_suite()[suite_path]
    suite, where = shrunk(suite_path, claims)
    cases = suites.expand(suite, "cpu", where=where)
    run_dir = runner.new_run_dir(tmp_path, suite)
    runner.run(runner.Run(suite, cases, run_dir, runner.start(run_dir, suite, "cpu")))
    frame = results.load(run_dir)
    for claim in claims:
        verdict = evaluate(at_test_sizes(claim), frame, "cpu")
        assert verdict.verdict in JUDGED, (claim.id, verdict.note, _statuses(frame))
        assert verdict.values and all(pd.notna(v) for v in verdict.values)


def _statuses(frame: pd.DataFrame) -> list[tuple]:
    return list(frame[["label", "status", "reason"]].itertuples(index=False))
