"""The `op` workload: one operator of a family, forward or forward+backward.

Each family that can be measured as a single op registers an OpFamily here
(see op_attention.py); the workload dispatches on the case's family.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import ClassVar

from pydantic import BaseModel

from harness.case import Case
from harness.workloads.base import Prepared, Workload, register_workload
from impls.registry import Impl


class OpFamily:
    family: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        raise NotImplementedError


_FAMILIES: dict[str, OpFamily] = {}


def register_op_family(cls: type[OpFamily]) -> type[OpFamily]:
    _FAMILIES[cls.family] = cls()
    return cls


@register_workload
class Op(Workload):
    name = "op"

    def families(self) -> list[str]:
        return sorted(_families())

    def params_model(self, family: str) -> type[BaseModel]:
        if family not in _families():
            raise KeyError(f"the op workload has no {family} family; valid: {', '.join(self.families())}")
        return _FAMILIES[family].Params

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        return _families()[case.family].prepare(case, impl)


def _families() -> dict[str, OpFamily]:
    """Every op family: the modules op_<family>.py beside this one register theirs when imported,
    which is done here, on first use, since the workload may be imported alone."""
    import harness.workloads as package

    for module in pkgutil.iter_modules(package.__path__, prefix="harness.workloads."):
        if module.name.rpartition(".")[2].startswith("op_"):
            importlib.import_module(module.name)
    return _FAMILIES
