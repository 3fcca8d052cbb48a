"""Models built from registered parts: decoder-only LMs (family "model") and
encoder-decoders (family "seq2seq").

A registered model is a preset: a function (vocab_size, d_model, n_layers,
**params) -> config, where the config's `build()` makes the nn.Module.
`build(name_or_config, **overrides)` is the one way to make a model;
`matched(name, target_params)` sizes a preset to a parameter budget, so
architectures can be compared at equal size; `from_pretrained(folder)` loads a
local GPT-2-format checkpoint into the decoder-only LM.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from impls import registry
from impls.models.pretrained import from_pretrained  # noqa: F401  (the public entry point)

FAMILIES = ("model", "seq2seq")
# A budget met this closely by d_model alone keeps the preset's own ffn width.
CLOSE_ENOUGH = 0.01
STEPS = (1, 2, 4, 8, 16, 32, 64)  # d_model granularities tried, finest first


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


_COUNTS: dict[str, int] = {}


def count(model_config: Any) -> int:
    """Parameters of the model `model_config` builds (a tied tensor once), built on the
    meta device so no weights are allocated."""
    key = repr(model_config)
    if key not in _COUNTS:
        with torch.device("meta"):
            _COUNTS[key] = sum(p.numel() for p in model_config.build().parameters())
    return _COUNTS[key]


def count_params(name: str, family: str | None = None, **kwargs: Any) -> int:
    """Parameters of preset `name` built with `kwargs`, without allocating weights."""
    return count(config(name, family, **kwargs))


@dataclass(frozen=True)
class Match:
    """A preset sized to a parameter budget."""

    config: Any  # the preset's config at the chosen size: build() it
    params: int  # its parameter count
    target: int  # the budget asked for
    ffn_hidden: int | None = None  # the ffn width the budget chose; None: the preset's own

    @property
    def d_model(self) -> int:
        return self.config.d_model

    @property
    def deviation(self) -> float:
        """params / target - 1 (0.03: 3% over the budget)."""
        return self.params / self.target - 1


def size_step(name: str, family: str | None = None, **kwargs: Any) -> int:
    """The finest granularity of d_model that preset `name` accepts with `kwargs`: the
    first of STEPS whose first multiples all build (a preset raises ValueError for a size
    it cannot run, e.g. heads that do not divide d_model)."""
    def builds(d_model: int) -> bool:
        try:
            count(config(name, family, d_model=d_model, **kwargs))
        except ValueError:
            return False
        return True

    for step in STEPS:
        if all(builds(k * step) for k in (1, 2, 3)):
            return step
    raise ValueError(f"model {name}: no d_model in multiples of {STEPS[-1]} builds with {kwargs}")


def matched(name: str, target_params: int, family: str | None = None, multiple: int | None = None,
            **kwargs: Any) -> Match:
    """Preset `name` (built with `kwargs`) with about `target_params` parameters.

    First d_model, a multiple of `multiple` (default: the finest the preset takes), by
    bisection (the count grows with d_model); then, when that is still more than
    CLOSE_ENOUGH away and the model has an ffn with a width, that width (the hidden
    size of the MLP or of each expert), so coarse steps of d_model (8 for four heads
    with RoPE: up to 9% of the count near 200k) do not decide a comparison. A model
    without one (Mamba, LSTM+attention) is matched by d_model alone, in fine steps.
    """
    step = multiple or size_step(name, family, **kwargs)

    def at(k: int) -> int:
        return count_params(name, family, d_model=k * step, **kwargs)

    lo, hi = 1, 1
    while at(hi) < target_params and hi * step < 16384:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if at(mid) < target_params else (lo, mid)
    best = min((lo, hi), key=lambda k: abs(at(k) - target_params))
    model_config = config(name, family, d_model=best * step, **kwargs)
    match = Match(model_config, count(model_config), target_params)
    return _tune_ffn(match) if abs(match.deviation) > CLOSE_ENOUGH else match


def _with_hidden(model_config: Any, hidden: int) -> Any:
    return replace(model_config, ffn_params={**model_config.ffn_params, "hidden": hidden})


def _tune_ffn(match: Match) -> Match:
    """`match` with the ffn width whose count is closest to the target; unchanged when the
    model has no ffn with a width. The count is linear in the width (each layer's up and
    down projections, per expert for MoE), so two counts give the slope."""
    model_config = match.config
    ffn = getattr(model_config, "ffn", "none")
    if ffn == "none" or "hidden" not in registry.get("ffn", ffn).params:
        return match
    start = 4 * model_config.d_model
    base = count(_with_hidden(model_config, start))
    slope = count(_with_hidden(model_config, start + 1)) - base
    hidden = max(1, start + round((match.target - base) / slope))
    tuned_config = _with_hidden(model_config, hidden)
    tuned = Match(tuned_config, count(tuned_config), match.target, hidden)
    return tuned if abs(tuned.deviation) < abs(match.deviation) else match
