"""Models built from registered parts: decoder-only LMs (family "model") and
encoder-decoders (family "seq2seq").

A registered model is a preset: a function (vocab_size, d_model, n_layers,
**params) -> config, where the config's `build()` makes the nn.Module.
`build(name_or_config, **overrides)` is the one way to make a model;
`matched(name, target_params)` picks the d_model that brings a preset closest
to a parameter budget, so architectures can be compared at equal size.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from impls import registry

FAMILIES = ("model", "seq2seq")


def preset(name: str, family: str | None = None) -> registry.Impl:
    """The registered preset `name` of `family`; without a family, "model" is looked up
    before "seq2seq" (both have a "transformer")."""
    if family:
        return registry.get(family, name)
    for candidate in FAMILIES:
        if name in registry.names(candidate):
            return registry.get(candidate, name)
    return registry.get("model", name)  # raises UnknownImpl with the valid names


def config(name: str, family: str | None = None, **kwargs: Any) -> Any:
    """The config of preset `name` with its default params, overridden by `kwargs`."""
    impl = preset(name, family)
    return impl.fn(**{**impl.params, **kwargs})


def build(config_or_name: Any, family: str | None = None, **overrides: Any) -> nn.Module:
    """A model from a preset name (overrides are the preset's arguments) or from a config
    dataclass (overrides replace its fields)."""
    if isinstance(config_or_name, str):
        return config(config_or_name, family, **overrides).build()
    return replace(config_or_name, **overrides).build() if overrides else config_or_name.build()


def count_params(name: str, family: str | None = None, **kwargs: Any) -> int:
    """Parameters of preset `name` built with `kwargs`, without allocating weights."""
    return _count(name, family, tuple(sorted(kwargs.items())))


@lru_cache(maxsize=None)
def _count(name: str, family: str | None, items: tuple) -> int:
    with torch.device("meta"):
        model = build(name, family, **dict(items))
    return sum(p.numel() for p in model.parameters())


def matched(name: str, target_params: int, multiple: int = 8, family: str | None = None,
            **kwargs: Any) -> tuple[int, int]:
    """(d_model, parameter count) of preset `name` whose count is closest to `target_params`.

    d_model is a multiple of `multiple` (so heads and rotary pairs divide it);
    the count grows with d_model, so a bisection over the multiples finds it.
    """
    def count(m: int) -> int:
        return count_params(name, family, d_model=m * multiple, **kwargs)

    lo, hi = 1, 1
    while count(hi) < target_params and hi < 4096:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target_params else (lo, mid)
    best = min((lo, hi), key=lambda m: abs(count(m) - target_params))
    return best * multiple, count(best)
