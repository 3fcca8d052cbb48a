"""How far a verdict carries to the source's hardware: from the records' env.json (the
`hardware` and `device` columns) against the hardware the claim names."""
from __future__ import annotations

from harness import metrics
from harness.claims.evaluate import Verdict
from harness.claims.model import Claim


def how_far(verdict: Verdict) -> str:
    """One sentence on what the comparison with the source can and cannot say, then the
    claim's own caveat (its `carries`)."""
    claim = verdict.claim
    return "; ".join(part for part in (_hardware_note(claim, verdict), claim.carries) if part)


def _hardware_note(claim: Claim, verdict: Verdict) -> str:
    if claim.hardware is None:
        return "does not depend on the hardware"
    if not verdict.hardware:
        return f"the source measured on {claim.hardware}"
    here = ", ".join(verdict.hardware)
    if all(claim.hardware.lower() in name.lower() for name in verdict.hardware):
        return f"same hardware as the source ({claim.hardware}): absolute figures are comparable"
    where = f"measured on {here}{' (a CPU)' if 'cpu' in verdict.devices else ''}, the source on {claim.hardware}"
    if claim.metric.kind == "column" and metrics.is_percent_of_peak(claim.metric.column):
        return (f"{where}: compare this device's fraction of its own measured peak with the source's "
                f"fraction of the {claim.hardware}'s; absolute rates do not carry")
    if claim.metric.kind == "column":
        return f"{where}: the absolute value does not carry"
    return f"{where}: the {_what(claim)} carries, absolute figures (ms, bytes, TFLOP/s) do not"


def _what(claim: Claim) -> str:
    return {"difference": "difference", "exponent": "exponent"}.get(claim.metric.kind, "ratio")
