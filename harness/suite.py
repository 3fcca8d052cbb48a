"""Suites: YAML files that declare a sweep, validated once here into typed models.

Every mistake becomes a UserError of one line naming the file, the key and
what would be valid. Past `load`, the rest of the harness trusts the types.
"""
from __future__ import annotations

import difflib
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from harness import suite_file, workloads
from harness.case import Case, Measure, Strict
from harness.errors import UserError
from harness.expr import Expression, ExprError
from impls import registry
from impls.precision import PRECISIONS


class ImplEntry(Strict):
    name: str
    label: str | None = None  # defaults to name; needed when one impl appears twice
    params: dict[str, Any] = {}

    @property
    def shown(self) -> str:
        return self.label or self.name


class Constraint(Strict):
    require: str  # expression over params, e.g. "window <= seq_len"
    reason: str | None = None


class DeviceOverride(Strict):
    """What changes on one device: values of some sweep axes, the zipped groups, fixed
    params, measure settings. One file then holds a GPU's sizes and a CPU's."""
    sweep: dict[str, list[Any]] = {}
    zip: list[dict[str, list[Any]]] | None = None
    fixed: dict[str, Any] = {}
    measure: dict[str, Any] = {}


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    workload: str
    family: str
    device: Literal["auto", "cpu", "cuda"] = "auto"
    impls: list[str | ImplEntry] = Field(min_length=1)
    sweep: dict[str, list[Any]] = {}
    zip: list[dict[str, list[Any]]] = []  # each group's lists move together
    fixed: dict[str, Any] = {}
    measure: Measure = Measure()
    constraints: list[Constraint] = []
    baseline: str | None = None  # the impl label reports compare against
    devices: dict[Literal["cpu", "cuda"], DeviceOverride] = {}  # replaces the above on that device

    @property
    def entries(self) -> list[ImplEntry]:
        return [ImplEntry(name=e) if isinstance(e, str) else e for e in self.impls]


# A suite expanding to more cases than this on one device is refused before it is expanded
# (`run --max-cases`): real ones expand to thousands, and 10^8 would take minutes and gigabytes.
MAX_CASES = suite_file.MAX_CASES


def load(path: str | Path, max_cases: int = MAX_CASES) -> Suite:
    """The suite in `path`, validated; a UserError (one line, naming the file and key) if it is
    not a valid suite or expands to more than `max_cases` cases on a device."""
    path = Path(path)
    raw = suite_file.read(path)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a suite must be a mapping with keys name, workload, family, impls, sweep")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as err:
        raise UserError(f"{path}: {_describe(err, Suite)}") from None
    for device in ("cpu", "cuda"):  # first: counting needs no imports, so a huge sweep is refused at once
        _check_case_count(suite, device, path, max_cases)
    _check_semantics(suite, path)
    for device in suite.devices:
        _check_override(suite, device, path)
    _check_constraints(suite, path)
    return suite


def case_count(suite: Suite) -> int:
    """Cases the suite expands to (before --only, --where and duplicates), without expanding it."""
    points = math.prod(len(values) for values in suite.sweep.values())
    points *= math.prod(len(next(iter(group.values()), [])) for group in suite.zip)
    return points * len(suite.impls)


def _check_case_count(suite: Suite, device: str, path: Path, max_cases: int) -> None:
    override = suite.devices.get(device)
    if override is not None:  # only the axes: the override's measure is checked later, with its own message
        suite = suite.model_copy(update={"sweep": {**suite.sweep, **override.sweep},
                                         "zip": suite.zip if override.zip is None else override.zip})
    count = case_count(suite)
    if count > max_cases:
        raise UserError(f"{path}: expands to {count:,} cases on {device}, over the limit of {max_cases:,}; "
                        "sweep fewer values, or raise the limit with --max-cases")


def for_device(suite: Suite, device: str) -> Suite:
    """The suite as it runs on `device`: its `devices.<device>` entries replace the general ones."""
    if not suite.devices:  # resolved already
        return suite
    override = suite.devices.get(device)
    if override is None:
        return suite.model_copy(update={"devices": {}})
    return suite.model_copy(update={
        "sweep": {**suite.sweep, **override.sweep},
        "zip": suite.zip if override.zip is None else override.zip,
        "fixed": {**suite.fixed, **override.fixed},
        "measure": Measure.model_validate(suite.measure.model_dump() | override.measure),
        "devices": {}})


def _check_override(suite: Suite, device: str, path: Path) -> None:
    override, where = suite.devices[device], f"{path}: devices.{device}"
    for section, general in (("sweep", suite.sweep), ("fixed", suite.fixed), ("measure", Measure.model_fields)):
        for key in getattr(override, section):
            if key not in general:
                raise UserError(f"{where}.{section}.{key}: not a key of the suite's {section}; "
                                f"valid: {', '.join(general) or 'none'}")
    try:
        resolved = for_device(suite, device)
    except ValidationError as err:
        raise UserError(f"{where}.measure: {_describe(err, Measure)}") from None
    try:
        _check_semantics(resolved, path)
    except UserError as err:
        raise UserError(str(err).replace(f"{path}: ", f"{where}: ", 1)) from None


def _describe(err: ValidationError, model: type[BaseModel]) -> str:
    errors = err.errors()
    # Of a union's branches (an impl is `str | ImplEntry`), report the one the input was
    # written as: a mapping's own errors, not "should be a valid string".
    meant = [e for e in errors if "ImplEntry" in e["loc"] and e["type"] not in ("model_type", "model_attributes_type")]
    first = (meant or errors)[0]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
                  if part not in ("str", "ImplEntry")).lstrip(".")
    if first["type"] == "extra_forbidden":
        valid = list(_fields_at(model, first["loc"][:-1]))
        close = difflib.get_close_matches(str(first["loc"][-1]), valid, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"{key}: unknown key; {hint}valid: {', '.join(valid)}"
    if first["type"] == "missing":
        return f"{key}: required key is missing"
    message = first["msg"].removeprefix("Value error, ")
    return f"{key}: {message} (got {first.get('input')!r})"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model at `loc`, for 'valid:' hints."""
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif isinstance(part, str) and part in ("impls",):
            model = ImplEntry
    return list(model.model_fields)


def _check_semantics(suite: Suite, path: Path) -> None:
    def fail(key: str, msg: str):
        raise UserError(f"{path}: {key}: {msg}")

    try:
        workloads.get(suite.workload)
    except KeyError:
        fail("workload", f"unknown workload '{suite.workload}'; valid: {', '.join(workloads.names())}")
    if not registry.known_family(suite.family):
        fail("family", f"unknown family '{suite.family}'; valid: {', '.join(registry.families())}")
    try:
        model = workloads.get(suite.workload).params_model(suite.family)
    except KeyError as err:
        fail("family", str(err.args[0]))
    impls = _check_impls(suite, fail)
    impl_params = {k: v for impl in impls for k, v in impl.params.items()}
    known = set(model.model_fields) | set(impl_params)
    seen: dict[str, str] = {}

    def check_key(where: str, key: str, values: list[Any]):
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            fail(f"{where}.{key}", f"unknown parameter{f'; did you mean {close[0]}?' if close else ''}"
                                   f" valid: {', '.join(sorted(known))}")
        if key in seen:
            fail(f"{where}.{key}", f"also set in {seen[key]}; give each parameter in one place")
        seen[key] = where
        if not values:
            fail(f"{where}.{key}", "needs at least one value")
        for value in values:
            _check_value(model, impl_params, key, value, lambda msg: fail(f"{where}.{key}", msg))

    for key, values in suite.sweep.items():
        check_key("sweep", key, values)
    for i, group in enumerate(suite.zip):
        if len({len(v) for v in group.values()}) > 1:
            fail(f"zip[{i}]", "the lists in a zipped group must have the same length")
        for key, values in group.items():
            check_key(f"zip[{i}]", key, values)
    for key, value in suite.fixed.items():
        check_key("fixed", key, [value])
    names, words = _known_names(suite), _words(suite)
    for i, constraint in enumerate(suite.constraints):
        try:
            Expression(constraint.require, names, words)
        except ExprError as err:
            fail(f"constraints[{i}].require", str(err))
    if suite.baseline and suite.baseline not in {e.shown for e in suite.entries}:
        fail("baseline", f"'{suite.baseline}' is not one of this suite's impls: "
                         f"{', '.join(e.shown for e in suite.entries)}")


def _check_impls(suite: Suite, fail) -> list[registry.Impl]:
    impls, labels = [], set()
    for i, entry in enumerate(suite.entries):
        try:
            impl = registry.get(suite.family, entry.name)
        except registry.UnknownImpl as err:
            fail(f"impls[{i}]", str(err))
        if entry.shown in labels:
            fail(f"impls[{i}]", f"'{entry.shown}' appears twice; give one of them a distinct label")
        labels.add(entry.shown)
        for key, value in entry.params.items():
            if key not in impl.params:
                fail(f"impls[{i}].params.{key}", f"{impl.name} takes no parameter '{key}'; "
                                                 f"valid: {', '.join(impl.params) or 'none'}")
            problem = _impl_value_problem(key, impl.params[key], value)
            if problem:
                fail(f"impls[{i}].params.{key}", problem)
        impls.append(impl)
    return impls


def _check_value(model: type[BaseModel], impl_params: dict[str, Any], key: str, value: Any, fail) -> None:
    if key in model.model_fields:
        try:
            model.model_validate({key: value}, strict=True)  # `heads: true` is not 1 head
        except ValidationError as err:
            fail(f"{err.errors()[0]['msg']} (got {value!r})")
        return
    problem = _impl_value_problem(key, impl_params[key], value)
    if problem:
        fail(problem)


# Integer impl params that may be 0: seeds, and counts of optional parts of a pattern
# (longformer's global_tokens, bigbird's global_blocks and num_random_blocks).
_MAY_BE_ZERO = ("seed", "global_", "num_")


def _impl_value_problem(key: str, default: Any, value: Any) -> str | None:
    """Why `value` cannot be impl param `key`, judged by its registered default; None if it can.

    The type is the default's. An integer is a size or a count: at least 1, or at
    least 0 where the default is 0 or the name is a seed's or an optional count's.
    A None default says nothing of the type; a number given for it is still a size."""
    kind = type(default)
    if default is None:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        kind = int
    got = f"(got {value!r})"
    if kind is bool:
        return None if isinstance(value, bool) else f"expected true or false like the default {default!r} {got}"
    if kind is int:
        least = 0 if default == 0 or any(part in key for part in _MAY_BE_ZERO) else 1
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer like the default {default!r} {got}"
        return None if value >= least else f"must be at least {least} {got}"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number like the default {default!r} {got}"
        return None if math.isfinite(value) and value >= 0 else f"must be a finite number >= 0 {got}"
    if not isinstance(value, kind):
        return f"expected {kind.__name__} like the default {default!r} {got}"
    return None


def expand(suite: Suite, device: str, where: str | None = None, only: list[str] | None = None) -> list[Case]:
    """Every (point, impl) of the sweep as a Case, in run order: points outer, impls inner,
    so slow drift of the machine touches every impl alike. Each case carries the validated
    measure settings and its workload's typed params, parsed once per distinct value."""
    suite = for_device(suite, device)
    axes = [((key,), [(v,) for v in values]) for key, values in suite.sweep.items()]
    axes += [(tuple(group), list(zip(*group.values()))) for group in suite.zip]
    axis_names = tuple(name for keys, _ in axes for name in keys)
    entries = [e for e in suite.entries if not only or e.shown in only or e.name in only]
    impls = {e.shown: registry.get(suite.family, e.name) for e in suite.entries}
    swept_impl_params = _all_impl_params(impls)
    model = workloads.get(suite.workload).params_model(suite.family)
    typed: dict[str, BaseModel] = {}
    filter_expr = _where(where, suite) if where else None
    cases, seen = [], set()
    for combo in itertools.product(*(values for _, values in axes)):
        point = {k: v for (keys, _), values in zip(axes, combo) for k, v in zip(keys, values)}
        for entry in entries:
            impl = impls[entry.shown]
            params = {**suite.fixed, **point, **entry.params}
            # A swept impl param applies to the impls that take it; drop it for the rest.
            params = {k: v for k, v in params.items() if k in impl.params or k not in swept_impl_params}
            own = {k: v for k, v in params.items() if k in model.model_fields}
            key = json.dumps(own, sort_keys=True, default=str)
            if key not in typed:
                typed[key] = model(**own)
            case = Case(suite=suite.name, workload=suite.workload, family=suite.family, impl=impl.name,
                        label=entry.shown, params=params,
                        impl_params=tuple(k for k in params if k in impl.params),
                        axes=tuple(a for a in axis_names if a in params), device=device,
                        measure=suite.measure, workload_params=typed[key])
            if case.id in seen:
                continue
            seen.add(case.id)
            if filter_expr and not _matches(filter_expr, case):
                continue
            cases.append(case)
    return [replace(c, index=i) for i, c in enumerate(cases)]


def _check_constraints(suite: Suite, path: Path) -> None:
    """Every constraint must evaluate at every point it applies to, on either device:
    found here, `seq_len / (heads - 4) > 0` is a line naming the file, not a crashed run."""
    if not suite.constraints:
        return
    exprs = _constraint_exprs(suite)
    for device in ("cpu", "cuda"):
        for case in expand(suite, device):
            values = _names(case)
            for i, expr in enumerate(exprs):
                if expr.names <= set(values):
                    try:
                        expr(values)
                    except ExprError as err:
                        raise UserError(f"{path}: constraints[{i}].require: {err}") from None


def _all_impl_params(impls: dict[str, registry.Impl]) -> set[str]:
    return {k for impl in impls.values() for k in impl.params}


def _names(case: Case) -> dict[str, Any]:
    return {**case.params, "impl": case.impl, "label": case.label, "device": case.device}


def _matches(where: Expression, case: Case) -> bool:
    try:
        return where(_names(case))
    except ExprError as err:
        raise UserError(f"--where: {err}") from None


def _where(text: str, suite: Suite) -> Expression:
    try:
        return Expression(text, _known_names(suite), _words(suite))
    except ExprError as err:
        raise UserError(f"--where: {err}") from None


def _known_names(suite: Suite) -> set[str]:
    model = workloads.get(suite.workload).params_model(suite.family)
    impls = {e.shown: registry.get(suite.family, e.name) for e in suite.entries}
    return set(model.model_fields) | _all_impl_params(impls) | {"impl", "label", "device"}


def _words(suite: Suite) -> set[str]:
    """Bare words an expression may use as strings: swept and fixed values, impl names."""
    values = [v for vs in suite.sweep.values() for v in vs] + list(suite.fixed.values())
    values += [v for group in suite.zip for vs in group.values() for v in vs]
    words = {v for v in values if isinstance(v, str)} | {*PRECISIONS, "fwd", "fwd_bwd", "cpu", "cuda"}
    return words | {e.shown for e in suite.entries} | {e.name for e in suite.entries}


def constraint_failure(suite: Suite, case: Case) -> str | None:
    """The reason `case` violates one of the suite's constraints, or None.

    A constraint applies only to cases that have every parameter it names
    (`window <= seq_len` says nothing about an impl without a window)."""
    if not suite.constraints:
        return None
    values = _names(case)
    for c, expr in zip(suite.constraints, _constraint_exprs(suite)):
        if expr.names <= set(values) and not expr(values):
            return c.reason or f"constraint not met: {c.require}"
    return None


def _constraint_exprs(suite: Suite) -> list[Expression]:
    names, words = _known_names(suite), _words(suite)
    return [Expression(c.require, names, words) for c in suite.constraints]
