"""The Workload contract: what is measured for a case.

A workload builds inputs, runs the impl and checks it against its reference;
it returns a `Prepared` whose `run` the worker times. It never times itself
and never writes a file.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.case import Case
from harness.measure.calls import CallLog
from impls.precision import PRECISIONS
from impls.registry import Impl

Precision = Literal[PRECISIONS]


class CommonParams(BaseModel):
    """Params every workload accepts."""

    model_config = ConfigDict(extra="forbid")
    precision: Precision = "fp32"
    seed: int = Field(0, ge=0)


@dataclass
class Prepared:
    run: Callable[[], object]  # the timed region: one call is one unit of `work`
    check: Callable[[], dict[str, float]] | None = None  # errors vs reference; must set within_tolerance
    work: dict[str, float] = field(default_factory=dict)  # per call: flops, bytes_moved, tokens, expected_peak_bytes
    stats: Callable[[], dict[str, float]] | None = None  # metrics read once after timing (quality, decode stats)
    timed: bool = True  # False where the result is quality, not speed (train)
    calls: CallLog | None = None  # what run() logs of each call; the timed calls' values become metrics
    # peak memory measured where the work runs (a distributed case's ranks), in place of the
    # worker's own passes over run(): passes -> (figures, every pass's peak_extra_bytes)
    memory: Callable[[int], tuple[dict[str, float], list[float]]] | None = None


class Workload:
    name: ClassVar[str]
    families: ClassVar[dict[str, type[BaseModel]]] = {}  # family -> the params model it reads

    def params_model(self, family: str) -> type[BaseModel]:
        """The pydantic model of the params this workload reads for `family`."""
        if family not in self.families:
            raise KeyError(f"the {self.name} workload has no {family} family; valid: {', '.join(self.families)}")
        return self.families[family]

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        raise NotImplementedError


_WORKLOADS: dict[str, Workload] = {}


def register_workload(cls: type[Workload]) -> type[Workload]:
    _WORKLOADS[cls.name] = cls()
    return cls


def _load_all() -> None:
    import harness.workloads as package

    for module in pkgutil.iter_modules(package.__path__, prefix="harness.workloads."):
        importlib.import_module(module.name)


def get(name: str) -> Workload:
    """The workload `name` (KeyError if there is none), importing its own module first
    (harness/workloads/<name>.py) and every workload only if it is not there."""
    if name not in _WORKLOADS and name.isidentifier() and importlib.util.find_spec(f"harness.workloads.{name}"):
        importlib.import_module(f"harness.workloads.{name}")
    if name not in _WORKLOADS:
        _load_all()
    return _WORKLOADS[name]


def names() -> list[str]:
    _load_all()
    return sorted(_WORKLOADS)


def params_of(workload: str, family: str, params: dict[str, Any]) -> BaseModel:
    """The workload's typed params for a case: its params model over the keys it declares
    (the rest belong to the impl)."""
    model = get(workload).params_model(family)
    return model(**{k: v for k, v in params.items() if k in model.model_fields})
