"""Building a case's language model: sized (d_model, or a parameter budget), seeded, and
refused before it is allocated when a part it runs cannot run here.

The model, generate, serve and train workloads build their models here.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.measure import memory
from harness.workloads.base import CommonParams
from impls import models, registry
from impls.models import presets
from impls.models.lm import LMConfig, param_count


class ModelSize(CommonParams):
    """How big a model is: d_model directly, or chosen to match target_params."""

    d_model: int = Field(128, ge=1)
    # overrides d_model: d_model, then the ffn width, chosen so the count is within about 1%
    target_params: int | None = Field(None, ge=1)
    n_layers: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)


def sized_config(name: str, family: str, d_model: int, target_params: int | None,
                 **kwargs: Any) -> tuple[Any, dict[str, float]]:
    """The config of preset `name` at d_model, or sized to target_params (kwargs: the
    preset's other arguments), and what the record says about its size: target_params,
    param_deviation (count / target - 1) and ffn_hidden (the width the budget chose)."""
    if not target_params:
        return models.config(name, family, d_model=d_model, **kwargs), {}
    match = models.matched(name, target_params, family=family, **kwargs)
    facts = {"target_params": float(match.target), "param_deviation": match.deviation}
    if match.ffn_hidden is not None:
        facts["ffn_hidden"] = float(match.ffn_hidden)
    return match.config, facts


def build_sized(case: Case, size: ModelSize, vocab_size: int, max_seq_len: int,
                backward: bool = False) -> tuple[torch.nn.Module, dict[str, float]]:
    """The case's preset at `size`, seeded, on the case's device, in fp32, and its size
    facts (param_count, d_model, and sized_config's). A checkpoint preset (fixed_size) has
    its own sizes. Skip, before anything is allocated, when a part it runs (the chosen
    attention impl) cannot run here (`backward`: it will be trained)."""
    impl = registry.get("model", case.impl)
    if backward and not impl.backward:
        raise Skip(f"model {impl.name} is forward-only (registered with backward=False)")
    if impl.fixed_size:
        model_config, facts = models.config(case.impl, "model", **case.impl_kwargs()), {}
    else:
        kwargs = dict(vocab_size=vocab_size, n_layers=size.n_layers, max_seq_len=max_seq_len, **case.impl_kwargs())
        model_config, facts = sized_config(case.impl, "model", size.d_model, size.target_params, **kwargs)
    lm_config = model_config.lm_config() if hasattr(model_config, "lm_config") else model_config
    _refuse_impossible(lm_config, case.device, size.precision, backward, vocab_size, max_seq_len)
    torch.manual_seed(size.seed)
    model, load = _load(model_config, case.device)
    return model, {"param_count": float(param_count(model)), "d_model": float(model.config.d_model), **facts, **load}


def _load(model_config: Any, device: str) -> tuple[torch.nn.Module, dict[str, float]]:
    """The model built onto `device` (a checkpoint: read from its files, as a server starts;
    the OS may hold the files in its page cache), with load_ms and the peak extra memory of
    the load (load_peak_extra_bytes, measured as harness.measure.memory measures a call)."""
    built: list[torch.nn.Module] = []
    start = time.perf_counter()
    peaks = memory.peak(lambda: built.append(model_config.build().to(device)), device)
    facts = {"load_ms": (time.perf_counter() - start) * 1e3}
    if "peak_extra_bytes" in peaks:
        facts["load_peak_extra_bytes"] = peaks["peak_extra_bytes"]
    return built[0], facts


def build_model(case: Case, size: ModelSize, vocab_size: int, max_seq_len: int) -> torch.nn.Module:
    """build_sized's model alone."""
    return build_sized(case, size, vocab_size, max_seq_len)[0]


def _refuse_impossible(config, device: str, precision: str, backward: bool, vocab_size: int,
                       max_seq_len: int) -> None:
    if vocab_size > config.vocab_size:
        raise ValueError(f"the task needs a vocabulary of {vocab_size}; the model has {config.vocab_size}")
    if max_seq_len > config.max_seq_len:
        raise Skip(f"the model has {config.max_seq_len} positions, the case needs {max_seq_len}")
    if not isinstance(config, LMConfig):  # a library's model (impls.models.hf): its parts are its own
        return
    reason = (presets.unavailable(config, device, precision)
              or (_forward_only_part(config) if backward else None)
              or _attention_unsupported(config, device, backward, max_seq_len))
    if reason:
        raise Skip(reason)


def _forward_only_part(config) -> str | None:
    """Why the model cannot be trained: a mixer or ffn it runs is forward-only (None: none is)."""
    for family, name in (("mixer", config.mixer), ("ffn", config.ffn)):
        if name != "none" and not registry.get(family, name).backward:
            return f"{family} {name} is forward-only (registered with backward=False)"
    return None


def _attention_unsupported(config, device: str, backward: bool, seq_len: int) -> str | None:
    """Why the attention impl the model runs cannot do this case (None: it can), asked as
    every workload asks it (registry.refusal)."""
    name = config.mixer_params.get("attention")
    if not name:
        return None
    impl = registry.get("attention", name)
    heads = config.mixer_params.get("heads", 4)
    shape = {**config.mixer_params.get("attention_params", {}), "causal": True, "heads": heads,
             "kv_heads": config.mixer_params.get("kv_heads") or heads, "head_dim": config.d_model // heads}
    decoder = registry.refusal(impl, **shape, seq_len=2, kv_len=2)  # as the attention mixer asks when built
    if decoder:
        return f"attention impl '{name}' cannot be a causal (decoder) mixer: {decoder}"
    if backward and not impl.backward:
        return f"attention {name} has no backward pass"
    return registry.refusal(impl, **shape, device=device, direction="fwd_bwd" if backward else "fwd",
                            seq_len=seq_len, kv_len=seq_len)
