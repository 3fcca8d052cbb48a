"""A Case: one point of a suite's sweep for one impl, everything a worker needs."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


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
    measure: dict[str, Any] = field(default_factory=dict)
    index: int = 0

    @property
    def id(self) -> str:
        """Stable across runs of the same suite: the label and params, not the position."""
        key = json.dumps([self.label, self.params], sort_keys=True, default=str)
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    @property
    def precision(self) -> str:
        return self.params.get("precision", "fp32")

    def impl_kwargs(self) -> dict[str, Any]:
        return {k: self.params[k] for k in self.impl_params if k in self.params}

    def describe(self) -> str:
        swept = ", ".join(f"{a}={self.params.get(a)}" for a in self.axes)
        return f"{self.label} [{swept}]"
