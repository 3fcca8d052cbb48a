"""A Case: one point of a suite's sweep for one impl, everything a worker needs, typed.

Built once by the suite (harness.suite.expand): the validated measure settings and the
workload's typed params travel with it to the worker, which trusts them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Strict(BaseModel):
    # strict: `heads: true` or `min_reps: "5"` is a mistake, not a 1 or a 5
    model_config = ConfigDict(extra="forbid", strict=True)


class Measure(Strict):
    """How a case is measured: the suite's `measure` block, validated."""

    warmup: int = Field(2, ge=0)  # calls after the first, before timing
    min_reps: int = Field(5, ge=1)
    max_reps: int = Field(100, ge=1)
    noise_target: float = Field(0.02, gt=0, lt=1)  # stop when the median's CI is within this fraction
    noisy_above: float = Field(0.1, gt=0)  # IQR/median above this flags a case as noisy
    max_time_s: float = Field(1.0, gt=0)  # time cap for the timing loop of one case
    timeout_s: float = Field(120.0, gt=0)  # a case still running then is killed
    budget_s: float | None = Field(None, gt=0)  # one call slower than this prunes larger sizes
    threads: int | None = Field(None, ge=1)  # CPU threads; default: all torch uses
    memory_passes: int = Field(3, ge=1)  # peak memory is the median of this many passes
    memory_limit_gib: float | None = Field(None, gt=0)  # per worker; default: 3/4 of this machine's RAM
    check: bool = True  # compare against the reference before timing
    timed: bool = True  # False: the check alone, no timing or memory passes (`run --check-only`)
    profile: bool = False  # a torch.profiler pass after timing (`run --profile`; harness.profile)
    profile_stack: bool = False  # that pass with Python stacks (`--profile-stack`)

    @field_validator("max_reps")
    @classmethod
    def _at_least_min_reps(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("min_reps", 1):
            raise ValueError(f"must be at least min_reps ({info.data['min_reps']})")
        return value


@dataclass(frozen=True)
class Case:
    suite: str
    workload: str
    family: str
    impl: str  # registry name
    label: str  # the name shown in tables (an impl may appear twice with other params)
    params: dict[str, Any]  # sweep, zipped, fixed and impl params, merged
    impl_params: tuple[str, ...]  # the keys of `params` that are passed to the impl
    axes: tuple[str, ...]  # the swept parameter names
    device: str
    measure: Measure = field(default_factory=Measure)
    index: int = 0
    # the workload's params model over `params` (harness.workloads.params_of); None: parsed on use
    workload_params: BaseModel | None = None

    def __post_init__(self) -> None:
        if isinstance(self.measure, dict):  # a hand-built case (tests, scripts) may give a mapping
            object.__setattr__(self, "measure", Measure.model_validate(self.measure, strict=False))

    @property
    def id(self) -> str:
        """Stable across runs of the same suite: the label and params, not the position."""
        key = json.dumps([self.label, self.params], sort_keys=True, default=str)
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    @property
    def precision(self) -> str:
        return self.params.get("precision", "fp32")

    @property
    def typed(self) -> Any:
        """The workload's typed params (its params model) for this case."""
        if self.workload_params is not None:
            return self.workload_params
        from harness.workloads import params_of  # the workloads import this module

        return params_of(self.workload, self.family, self.params)

    def impl_kwargs(self) -> dict[str, Any]:
        return {k: self.params[k] for k in self.impl_params if k in self.params}

    def describe(self) -> str:
        swept = ", ".join(f"{a}={self.params.get(a)}" for a in self.axes)
        return f"{self.label} [{swept}]"
