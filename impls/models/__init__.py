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


def preset(name: str) -> registry.Impl:
    """The registered preset `name`, from family "model" or "seq2seq"."""
    for family in FAMILIES:
        if name in registry.names(family):
            return registry.get(family, name)
    return registry.get("model", name)  # raises UnknownImpl with the valid names


def config(name: str, **kwargs: Any) -> Any:
    """The config of preset `name` with its default params, overridden by `kwargs`."""
    impl = preset(name)
    return impl.fn(**{**impl.params, **kwargs})


def build(config_or_name: Any, **overrides: Any) -> nn.Module:
    """A model from a preset name (overrides are the preset's arguments) or from a config
    dataclass (overrides replace its fields)."""
    if isinstance(config_or_name, str):
        return config(config_or_name, **overrides).build()
    return replace(config_or_name, **overrides).build() if overrides else config_or_name.build()


def count_params(name: str, **kwargs: Any) -> int:
    """Parameters of preset `name` built with `kwargs`, without allocating weights."""
    return _count(name, tuple(sorted(kwargs.items())))


@lru_cache(maxsize=None)
def _count(name: str, items: tuple) -> int:
    with torch.device("meta"):
        model = build(name, **dict(items))
    return sum(p.numel() for p in model.parameters())


def matched(name: str, target_params: int, multiple: int = 16, **kwargs: Any) -> tuple[int, int]:
    """(d_model, parameter count) of preset `name` whose count is closest to `target_params`.

    d_model is a multiple of `multiple` (so heads and rotary pairs divide it);
    the count grows with d_model, so a bisection over the multiples finds it.
    """
    lo, hi = 1, 1
    while count_params(name, d_model=hi * multiple, **kwargs) < target_params and hi < 4096:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_params(name, d_model=mid * multiple, **kwargs) < target_params:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda m: abs(count_params(name, d_model=m * multiple, **kwargs) - target_params))
    return best * multiple, count_params(name, d_model=best * multiple, **kwargs)
