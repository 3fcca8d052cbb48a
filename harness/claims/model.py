"""The claims registry (claims/claims.yaml): one typed entry per published claim or project target."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness import metrics
from harness.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
CLAIMS_FILE = ROOT / "claims" / "claims.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Band(_Strict):
    """Where a value must lie for the claim to hold: [low, high], either end open."""

    low: float = -math.inf
    high: float = math.inf

    def __str__(self) -> str:
        if math.isinf(self.low) and math.isinf(self.high):
            return "any"
        if math.isinf(self.low):
            return f"≤{self.high:.3g}"
        if math.isinf(self.high):
            return f"≥{self.low:.3g}"
        return f"{self.low:.3g}–{self.high:.3g}"


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

    def band(self, tolerance: float) -> Band:
        """The claimed range, each bound widened by `tolerance` (relative)."""
        if self.about is not None:
            spread = tolerance * abs(self.about)
            return Band(low=self.about - spread, high=self.about + spread)
        low = -math.inf if self.at_least is None else self.at_least * (1 - tolerance)
        high = math.inf if self.at_most is None else self.at_most * (1 + tolerance)
        return Band(low=low, high=high)

    def holds(self, value: float, tolerance: float) -> bool:
        band = self.band(tolerance)
        return band.low <= value <= band.high

    def __str__(self) -> str:
        if self.about is not None:
            return f"≈{self.about:g}"
        if self.at_least is not None and self.at_most is not None:
            return f"{self.at_least:g}–{self.at_most:g}"
        return f"≥{self.at_least:g}" if self.at_least is not None else f"≤{self.at_most:g}"


class ClaimedAt(_Strict):
    """A published value per condition (a table's columns): `values` keyed by the value of
    `axis` at that point, e.g. LRA's speed-up at 1K, 2K, 3K and 4K tokens."""

    axis: str
    values: dict[float, Claimed]


class KernelRule(_Strict):
    """Which kernel path a value must come from (the records' `column` names the path that
    ran); values from other paths (a fallback) are left out, and a claim with only those
    is `not measured`, with the path that ran as the reason."""

    column: str
    accept: list[str]


class Leviathan(_Strict):
    """Leviathan et al.'s Theorem 3.8 for a speculative-decoding point: expected speed-up
    (1 - a^(g+1)) / ((1 - a)(g c + 1)) from the measured acceptance rate a (`alpha`), the
    draft length g (`k`) and the cost ratio c: the draft alone over the target alone, per
    call, from greedy decoding of each at the same prompt and length."""

    target: str  # the target's label
    target_where: str  # its greedy rows
    draft: str  # the draft's label (the draft model decoding alone)
    draft_where: str | None = None
    alpha: str = "alpha"  # the speculative record's acceptance-rate column
    k: str = "k"
    match: list[str] = ["prompt_len", "new_tokens", "batch"]  # what the three records share


class Metric(_Strict):
    """How the claim's value is computed from records.

    ratio:      column(numerator) / column(denominator), joined on `match` params
    difference: column(numerator) - column(denominator), joined on `match`
    exponent:   log-log slope of `column` against `axis`, for `numerator`, one fit per combination
                of every other swept axis (and of `match`), never pooled across conditions
    column:     the column itself, for `numerator`
    leviathan:  a measured speculative speed-up (as `ratio`) over Theorem 3.8's expectation
    Every value carries a 95% interval from the raw samples (harness.claims.interval).
    """

    kind: Literal["ratio", "difference", "exponent", "column", "leviathan"]
    column: str = "median_ms"
    add_column: str | None = None  # added to `column` on each side (e.g. the state a step keeps)
    numerator: str  # an impl label
    denominator: str | None = None  # default: the numerator's label (sides differ by their where)
    numerator_where: str | None = None  # picks one side's rows, e.g. "policy == continuous"
    denominator_where: str | None = None
    denominator_column: str | None = None  # default: same column
    axis: str | None = None  # for exponent
    match: list[str] = []  # params both sides must share
    where: str | None = None  # restrict the points, e.g. "seq_len >= 1024"
    repeats: str | None = None  # a param whose values are repeats (seeds): pooled into one point
    show: list[str] = []  # columns reported beside the value at each point (e.g. tflops), not judged
    best: bool = False  # judge the highest value only (a claim about a best point: "up to")
    # shown beside each value, not judged: the same metric with the numerator picked by each
    # of these instead (a control: e.g. no positional encoding against ALiBi)
    controls: list[str] = []
    control_side: Literal["numerator", "denominator"] = "numerator"  # the side a control replaces
    kernel: KernelRule | None = None
    expected: Leviathan | None = None  # for speculative speed-ups: Theorem 3.8 beside each value
    # Pair records of different runs on the same hardware, for what one install cannot hold
    # (flash-attn 1.x and 2.x); otherwise a ratio or a fit never leaves its run.
    across_runs: bool = False

    @model_validator(mode="after")
    def _complete(self) -> "Metric":
        for name in (self.column, self.add_column, self.denominator_column, *self.show):
            if name is not None:
                metrics.get(name)  # an UnknownMetric (a ValueError) names the catalogue
        if self.kind in ("ratio", "difference", "leviathan") and not (self.denominator or self.denominator_where):
            raise ValueError(f"a {self.kind} needs a denominator or a denominator_where")
        if self.kind == "exponent" and not self.axis:
            raise ValueError("an exponent needs an axis")
        if self.kind == "leviathan" and not self.expected:
            raise ValueError("a leviathan metric needs `expected`")
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
    kind: Literal["published", "target"] = "published"  # target: the project's own goal, no paper
    claim: str  # what the source says, short
    source: str  # the primary source: paper (venue, arXiv id) or official README / blog with its date
    locator: str  # where in it: table, figure or section
    published: str  # the figure exactly as published
    conditions: str  # what the source measured on (hardware, shapes, precision)
    metric: Metric
    claimed: Claimed | None = None
    claimed_at: ClaimedAt | None = None
    tolerance: float = Field(0.0, ge=0)
    band_reason: str  # why the band is what it is: the source's own range, or a tolerance and its reason
    needs: Needs = Needs()
    suite: str  # the suite that measures it (relative to the project root)
    # the device family the source measured on, as it appears in a GPU's name ("A100") or as
    # the source names it ("TPU v3"); None where the claim does not depend on the hardware
    hardware: str | None = None
    test: TestScale | None = None  # set for claims a CPU can check (tests)
    scaling: str  # how the suite measures what the source measured, scaled in size only
    carries: str = ""  # what limits the comparison beyond the hardware (shapes, model size)

    @model_validator(mode="after")
    def _one_claimed(self) -> "Claim":
        if (self.claimed is None) == (self.claimed_at is None):
            raise ValueError("give claimed or claimed_at (one of them)")
        return self

    def band(self, point: dict[str, Any] | None = None) -> Band | None:
        """The band at a point (its params); None where claimed_at has no value for it."""
        if self.claimed is not None:
            return self.claimed.band(self.tolerance)
        value = (point or {}).get(self.claimed_at.axis)
        try:
            claimed = self.claimed_at.values.get(float(value))
        except (TypeError, ValueError):
            return None
        return claimed.band(self.tolerance) if claimed else None

    def claimed_text(self) -> str:
        if self.claimed is not None:
            return str(self.claimed)
        return "; ".join(f"{_number(at)}: {c}" for at, c in self.claimed_at.values.items())

    @property
    def suite_name(self) -> str:
        """The `name` its suite gives its records (the file's stem when it cannot be read)."""
        try:
            return str(yaml.safe_load(self.suite_path.read_text()).get("name") or self.suite_path.stem)
        except (OSError, yaml.YAMLError, AttributeError):
            return self.suite_path.stem

    @property
    def suite_path(self) -> Path:
        """The suite file: as given when it exists from here, else under the project root."""
        given = Path(self.suite)
        return given if given.is_absolute() or given.exists() else ROOT / given


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


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
