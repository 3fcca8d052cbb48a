"""The claims registry (claims/claims.yaml): one typed entry per published claim."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
CLAIMS_FILE = ROOT / "claims" / "claims.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Claimed(_Strict):
    """The published value: at least, at most, a range, or about a value."""

    at_least: float | None = None
    at_most: float | None = None
    about: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Claimed":
        if self.about is not None and (self.at_least is not None or self.at_most is not None):
            raise ValueError("give 'about' alone, or 'at_least' and/or 'at_most'")
        if self.about is None and self.at_least is None and self.at_most is None:
            raise ValueError("give at_least, at_most or about")
        return self

    def holds(self, value: float, tolerance: float) -> bool:
        """Within the claim, allowing `tolerance` (relative) slack on each bound."""
        if self.about is not None:
            return abs(value - self.about) <= tolerance * abs(self.about)
        low_ok = self.at_least is None or value >= self.at_least * (1 - tolerance)
        high_ok = self.at_most is None or value <= self.at_most * (1 + tolerance)
        return low_ok and high_ok

    def __str__(self) -> str:
        if self.about is not None:
            return f"≈{self.about:g}"
        if self.at_least is not None and self.at_most is not None:
            return f"{self.at_least:g}–{self.at_most:g}"
        return f"≥{self.at_least:g}" if self.at_least is not None else f"≤{self.at_most:g}"


class Metric(_Strict):
    """How the claim's value is computed from records.

    ratio:      column(numerator) / column(denominator), joined on `match` params
    difference: column(numerator) - column(denominator), joined on `match`
    exponent:   log-log slope of `column` against `axis`, for `numerator`, one fit per combination
                of every other swept axis (and of `match`), never pooled across conditions
    column:     the column itself, for `numerator`
    """

    kind: Literal["ratio", "difference", "exponent", "column"]
    column: str = "median_ms"
    numerator: str  # an impl label
    denominator: str | None = None  # default: the numerator's label (sides differ by their where)
    numerator_where: str | None = None  # picks one side's rows, e.g. "policy == continuous"
    denominator_where: str | None = None
    denominator_column: str | None = None  # default: same column
    axis: str | None = None  # for exponent
    match: list[str] = []  # params both sides must share
    where: str | None = None  # restrict the points, e.g. "seq_len >= 1024"
    aggregate: Literal["each", "max", "min", "median"] = "each"  # judge every point, or one summary
    show: list[str] = []  # columns reported beside the value at each point (e.g. tflops), not judged
    # Pair records of different runs on the same hardware, for what one install cannot hold
    # (flash-attn 1.x and 2.x); otherwise a ratio or a fit never leaves its run.
    across_runs: bool = False

    @model_validator(mode="after")
    def _complete(self) -> "Metric":
        if self.kind in ("ratio", "difference") and not (self.denominator or self.denominator_where):
            raise ValueError(f"a {self.kind} needs a denominator or a denominator_where")
        if self.kind == "exponent" and not self.axis:
            raise ValueError("an exponent needs an axis")
        return self


class Needs(_Strict):
    device: Literal["cpu", "cuda", "any"] = "any"
    modules: list[str] = []  # python modules that must be importable
    compute_capability: float | None = None


class TestScale(_Strict):
    """How tests/test_claims_registry.py shrinks the claim's suite to seconds on a CPU: a run
    that still gives the claim a measured value (which value, at such sizes, is not the point)."""

    where: str | None = None  # the suite's cases to run (as `harness run --where`)
    sweep: dict[str, list[Any]] = {}  # replaces these swept axes' values
    # sets these params to one value wherever the suite gives them (fixed, a swept axis, a
    # column of a zipped group), so the test keeps working as a suite rearranges its points
    params: dict[str, Any] = {}
    metric_where: str | None = None  # replaces metric.where at these sizes; "" drops it


class Claim(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    claim: str  # as published, short
    source: str  # paper + table/figure, or repository file
    conditions: str  # what the source measured on (hardware, shapes, precision)
    metric: Metric
    claimed: Claimed
    tolerance: float = Field(0.1, ge=0)
    needs: Needs = Needs()
    suite: str  # the suite that measures it (relative to the project root)
    # the device family the source measured on, as it appears in a GPU's name ("A100") or as
    # the source names it ("TPU v3"); None where the claim does not depend on the hardware
    hardware: str | None = None
    test: TestScale | None = None  # set for claims a CPU can check (tests)
    scaling: str = ""  # how the suite scales the paper's conditions to this device
    carries: str = ""  # what limits the comparison beyond the hardware (shapes, model size)

    @property
    def suite_path(self) -> Path:
        """The suite file: as given when it exists from here, else under the project root."""
        given = Path(self.suite)
        return given if given.is_absolute() or given.exists() else ROOT / given


class Registry(_Strict):
    claims: list[Claim]


def load(path: Path = CLAIMS_FILE) -> list[Claim]:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read claims: {err}") from None
    try:
        claims = Registry.model_validate(raw).claims
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise UserError(f"{path}: {key}: {first['msg']}") from None
    ids = [c.id for c in claims]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise UserError(f"{path}: claims: id '{duplicate}' appears twice")
    return claims
