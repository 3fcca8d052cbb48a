"""A doctor row: one impl (or one kernel configuration) at one precision, judged over its
variants (causal or not, grouped heads, shapes), each a correctness check against the
reference in the shape of a worker record: status, reason, metrics."""
from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from typing import Any, Callable

from harness import worker
from harness.case import Case
from harness.suite import Measure

FAILED = ("wrong", "error", "oom", "timeout")
CHECK_ONLY = Measure(timed=False)  # the check before timing, and nothing else


@dataclass(frozen=True)
class Variant:
    label: str  # what this variant covers, e.g. "causal, Hq 4 / Hkv 2, N 33, M 40, fwd+bwd"
    check: Callable[[], dict[str, Any]]  # -> {"status", "reason", "metrics"}, like a worker record


@dataclass(frozen=True)
class Row:
    group: str  # attention, kernel configuration, model, ...
    impl: str
    what: str  # precision, configuration
    status: str  # pass | fail | skipped
    margin: float | None  # worst error over its tolerance, among the variants that ran
    detail: str  # the failing variant and why; else what ran, and what was skipped and why


def case_variant(label: str, case: Case) -> Variant:
    """A variant that runs `case` through the worker with timing off: its availability, the
    workload's build and the check against the reference at the workload's tolerance."""
    checked = replace(case, measure=CHECK_ONLY)
    return Variant(label, lambda: worker.execute(checked).to_json())


def judge(group: str, impl: str, what: str, variants: list[Variant]) -> Row:
    """Run every variant; fail on the first that is wrong or raises, skipped when none ran."""
    ran, skipped, margins = [], [], []
    for variant in variants:
        record = _run(variant)
        if record["status"] in FAILED:
            return Row(group, impl, what, "fail", _margin(record["metrics"]),
                       f"{variant.label}: {record['status']}: {record['reason']}")
        if record["status"] == "skipped":
            skipped.append((variant.label, record["reason"]))
            continue
        ran.append(variant.label)
        margins.append(_margin(record["metrics"]))
    if not ran:
        reasons = dict.fromkeys(reason for _, reason in skipped)  # each reason once, in order
        return Row(group, impl, what, "skipped", None, "; ".join(reasons))
    known = [m for m in margins if m is not None]
    detail = f"{len(ran)} checked"
    for reason in dict.fromkeys(reason for _, reason in skipped):
        which = [label for label, said in skipped if said == reason]
        detail += f"; {len(which)} skipped ({which[0]}{', ...' if len(which) > 1 else ''}): {reason}"
    return Row(group, impl, what, "pass", max(known) if known else None, detail)


def _run(variant: Variant) -> dict[str, Any]:
    try:
        return variant.check()
    except Exception as err:  # a check's own failure is the row's result, never the doctor's crash
        where = traceback.extract_tb(err.__traceback__)[-1]
        return {"status": "error", "reason": f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})",
                "metrics": {}}


def _margin(metrics: dict[str, float]) -> float | None:
    """The worst of error / tolerance for the output and, where recorded, the gradients."""
    pairs = [("rel_err", "tolerance"), ("grad_rel_err", "grad_tolerance")]
    ratios = [metrics[err] / metrics[tol] for err, tol in pairs if metrics.get(tol) and err in metrics]
    return max(ratios) if ratios else None
