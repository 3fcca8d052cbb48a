"""Every registered claim refers to suites, impls and parameters that exist; the claims that
need no GPU are judged end to end on this CPU at small sizes."""
from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest

from harness import results, runner, suite as suites
from harness.claims import model
from harness.claims.evaluate import NOT_APPLICABLE, applicable, evaluate
from harness.expr import Expression

CLAIMS = model.load()


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_claim_refers_to_a_suite_its_impls_and_params(claim):
    suite = suites.load(claim.suite)
    labels = {e.shown for e in suite.entries}
    metric = claim.metric
    assert metric.numerator in labels
    assert (metric.denominator or metric.numerator) in labels
    names = suites._known_names(suite) | set(suite.fixed) | {"device", "status"}
    words = suites._words(suite) | labels
    for text in (metric.where, metric.numerator_where, metric.denominator_where, claim.test_where):
        if text:
            Expression(text, names, words)  # raises on an unknown name
    for key in metric.match + ([metric.axis] if metric.axis else []):
        assert key in names, f"{claim.id}: {key} is not a parameter of {claim.suite}"


def cpu_claims_by_suite() -> dict[str, list[model.Claim]]:
    grouped = defaultdict(list)
    for claim in CLAIMS:
        if claim.test_where and applicable(claim, "cpu") is None:
            grouped[claim.suite].append(claim)
    return grouped


@pytest.mark.slow
@pytest.mark.parametrize("suite_path", sorted(cpu_claims_by_suite()))
def test_cpu_claims_get_a_measured_verdict(suite_path, tmp_path):
    claims = cpu_claims_by_suite()[suite_path]
    suite = suites.for_device(suites.load(suite_path), "cpu")
    where = " or ".join(f"({c.test_where})" for c in claims)
    cases = suites.expand(suite, "cpu", where=where)
    run_dir = runner.new_run_dir(tmp_path, suite)
    runner.run(suite, cases, run_dir, runner.start(run_dir, suite, "cpu"))
    frame = results.load(run_dir)
    for claim in claims:
        verdict = evaluate(claim, frame, "cpu")
        assert verdict.verdict != NOT_APPLICABLE, (claim.id, verdict.note, _statuses(frame))
        assert verdict.values and all(pd.notna(v) for v in verdict.values)


def _statuses(frame: pd.DataFrame) -> list[tuple]:
    return list(frame[["label", "status", "reason"]].itertuples(index=False))
