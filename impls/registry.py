"""The one place implementations are found.

Every impl registers itself with `@register(family, name, ...)`, declaring what
it needs (requirements), where it runs (devices) and which precisions it
supports. `available()` answers whether a case can run here, and if not, why,
in words a person can read. The harness finds impls only through this module.

An impl may also declare `peak_bytes=fn(params)` (expected extra memory of one
call), `supports=fn(params) -> reason | None` (the modes it defines, e.g. causal
only; asked through `refusal`, the same way by every workload; a case outside
them is skipped with that reason), `fixed_size=True` (a checkpoint with its own
sizes), `compiles_per_shape=True` (its first call at each shape compiles, tens of
seconds on CUDA: `harness doctor` checks it last) and, for positional encodings, `kind`.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from impls.errors import PluginError
from impls.precision import PRECISIONS

DEVICES = ("cpu", "cuda")

# A requirement takes (device, precision) and returns None when met, or the
# reason it is not ("flash-attn is not installed").
Requirement = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Impl:
    family: str
    name: str
    fn: Any  # a function (attention) or an nn.Module class (mixers, models)
    requires: tuple[Requirement, ...] = ()
    precisions: frozenset[str] = frozenset(("fp32", "fp16", "bf16"))
    devices: frozenset[str] = frozenset(DEVICES)
    exact: bool = True
    reference: str | None = None  # the impl this one must equal (same family)
    flops: Callable[..., float] | None = None  # analytic FLOPs from case params
    bytes_moved: Callable[..., float] | None = None  # minimum bytes from case params
    backward: bool = True  # supports forward+backward
    params: dict[str, Any] = field(default_factory=dict)  # the impl's own params and defaults
    doc: str = ""
    supports: Callable[[dict[str, Any]], "str | None"] | None = None  # why a call is outside its modes, or None
    peak_bytes: Callable[[dict[str, Any]], float] | None = None  # expected extra bytes of one call
    fixed_size: bool = False  # a checkpoint's own sizes: a suite's d_model/target_params do not apply
    kind: str | None = None  # positional encodings: absolute, rotary or bias
    compiles_per_shape: bool = False  # its first call at each shape compiles (harness doctor checks it last)
    reads: tuple[str, ...] = ()  # Evoformer ops: which representations they take (m: MSA, z: pair)
    algorithm: int | None = None  # Evoformer ops: the algorithm's number in AlphaFold 2's supplement


class UnknownImpl(LookupError):
    def __init__(self, family: str, name: str, valid: list[str]):
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(valid) or 'none'}"
        super().__init__(f"unknown {family} impl '{name}' ({hint})")
        self.family, self.name, self.close, self.valid = family, name, close, valid


_REGISTRY: dict[str, dict[str, Impl]] = {}
_loaded = False


def register(
    family: str,
    name: str,
    *,
    requires: tuple[Requirement, ...] | list[Requirement] = (),
    precisions: tuple[str, ...] | list[str] = ("fp32", "fp16", "bf16"),
    devices: tuple[str, ...] | list[str] = DEVICES,
    exact: bool = True,
    reference: str | None = None,
    flops: Callable[..., float] | None = None,
    bytes_moved: Callable[..., float] | None = None,
    backward: bool = True,
    params: dict[str, Any] | None = None,
    doc: str | None = None,
    supports: Callable[[dict[str, Any]], "str | None"] | None = None,
    peak_bytes: Callable[[dict[str, Any]], float] | None = None,
    fixed_size: bool = False,
    kind: str | None = None,
    compiles_per_shape: bool = False,
    reads: tuple[str, ...] = (),
    algorithm: int | None = None,
) -> Callable[[Any], Any]:
    """Decorator: record `fn` as impl `name` of `family`; returns `fn` unchanged."""
    bad = set(precisions) - set(PRECISIONS)
    if bad:
        raise ValueError(f"{family}/{name}: unknown precisions {sorted(bad)}; valid: {PRECISIONS}")

    def decorate(fn: Any) -> Any:
        entry = _REGISTRY.setdefault(family, {})
        if name in entry and entry[name].fn is not fn:
            raise ValueError(f"{family}/{name} is registered twice ({entry[name].fn} and {fn})")
        entry[name] = Impl(
            family=family, name=name, fn=fn, requires=tuple(requires),
            precisions=frozenset(precisions), devices=frozenset(devices), exact=exact,
            reference=reference, flops=flops, bytes_moved=bytes_moved, backward=backward,
            params=dict(params or {}),
            doc=doc or (getattr(fn, "__doc__", None) or "").strip().split("\n")[0],
            supports=supports, peak_bytes=peak_bytes, fixed_size=fixed_size, kind=kind,
            compiles_per_shape=compiles_per_shape, reads=tuple(reads), algorithm=algorithm,
        )
        return fn

    return decorate


def load_all() -> None:
    """Import every module under `impls`, and the user's own modules named in
    SEQBENCH_PLUGINS (comma-separated), so that their @register calls run. A module whose
    name starts with an underscore registers nothing and is left to whoever calls it: the
    Triton kernels, since importing triton is a third of a second of every run's start."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import impls

    for module in pkgutil.walk_packages(impls.__path__, prefix="impls."):
        if not module.name.rpartition(".")[2].startswith("_"):
            importlib.import_module(module.name)
    for name in filter(None, (n.strip() for n in os.environ.get("SEQBENCH_PLUGINS", "").split(","))):
        _load_plugin(name)


def _load_plugin(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):  # the plugin (or its package)
            raise PluginError(f"SEQBENCH_PLUGINS: no module named '{name}' (comma-separated importable "
                              "module names; is its folder on PYTHONPATH?)") from None
        raise PluginError(f"SEQBENCH_PLUGINS: plugin '{name}' failed to import: {err}") from None
    except Exception as err:  # the plugin's own bug: still one line, the user's code
        raise PluginError(f"SEQBENCH_PLUGINS: plugin '{name}' failed to import: "
                          f"{type(err).__name__}: {err}") from None


def _load_family(family: str) -> None:
    """Import the modules of the package named for `family` (impls/attention for "attention",
    impls/mixers for "mixer"), so that a lookup need not import every impl: a run that uses one
    family starts a tenth of a second sooner. Impls registered elsewhere are found by load_all."""
    import impls

    for package in (family, family + "s"):
        if not package.isidentifier() or importlib.util.find_spec(f"impls.{package}") is None:
            continue
        module = importlib.import_module(f"impls.{package}")
        for sub in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"impls.{package}."):
            if not sub.name.rpartition(".")[2].startswith("_"):
                importlib.import_module(sub.name)
        return


def known_family(family: str) -> bool:
    if family not in _REGISTRY:
        _load_family(family)
    if family not in _REGISTRY:
        load_all()
    return family in _REGISTRY


def families() -> list[str]:
    load_all()
    return sorted(_REGISTRY)


def names(family: str) -> list[str]:
    load_all()
    return sorted(_REGISTRY.get(family, {}))


def get(family: str, name: str) -> Impl:
    if name not in _REGISTRY.get(family, {}):
        _load_family(family)
    if name not in _REGISTRY.get(family, {}):
        load_all()
    if family not in _REGISTRY:
        raise UnknownImpl("family", family, sorted(_REGISTRY))
    try:
        return _REGISTRY[family][name]
    except KeyError:
        raise UnknownImpl(family, name, names(family)) from None


def refusal(impl: Impl, **call: Any) -> str | None:
    """Why `impl` does not define a call with these params (device, direction, causal, seq_len,
    kv_len, heads, kv_heads, head_dim, ...; its own params default to its registered ones),
    from its `supports`; None when it does. Every workload and mixer asks this way."""
    return impl.supports({"batch": 1, **impl.params, **call}) if impl.supports else None


def available(impl: Impl, device: str, precision: str) -> tuple[bool, str]:
    """(True, "") when `impl` can run on `device` at `precision`, else (False, reason)."""
    if device not in impl.devices:
        return False, f"{impl.name} runs only on {', '.join(sorted(impl.devices))}"
    if precision not in impl.precisions:
        return False, f"{impl.name} supports {', '.join(sorted(impl.precisions))}, not {precision}"
    for requirement in impl.requires:
        reason = requirement(device, precision)
        if reason:
            return False, reason
    return True, ""
