"""Named decoder-only LMs (family "model"): one mixer per architecture.

Each preset is a function (vocab_size, d_model, n_layers, max_seq_len, **params)
-> LMConfig; `params` are what a suite may sweep (attention, positional, norm,
activation, experts...). A preset is available where its mixer and ffn are;
`unavailable(config, ...)` also checks the attention impl a suite chose. A
preset rejects (ValueError) a d_model it cannot run, so a parameter budget
(impls.models.matched) only picks sizes that work.

The recurrent architectures come twice: `lstm`, `gru`, `rnn` run torch's fused
layers (cuDNN on a GPU), `lstm_cell`, `gru_cell`, `rnn_cell` our cells written
out step by step (impls/mixers), so a suite measures what fusing buys.
"""
from __future__ import annotations

from typing import Any, Callable

from impls import registry
from impls.models.lm import LMConfig

# The size arguments every preset takes, with defaults for a quick build.
SIZE = {"vocab_size": 256, "d_model": 128, "n_layers": 2, "max_seq_len": 2048}

# What the attention presets pass to the attention mixer: any registered attention impl
# (with its own params), heads, kv_heads < heads for grouped-query attention (1:
# multi-query; None: one KV head per query head).
ATTENTION = {"attention": "sdpa_math", "attention_params": {}, "heads": 4, "kv_heads": None}
ATTENTION_KEYS = tuple(ATTENTION)


def parts_available(*parts: tuple[str, str]):
    """A requirement: each (family, name) part is registered and available here."""

    def check(device: str, precision: str) -> str | None:
        for family, name in parts:
            if name == "none":
                continue
            if name not in registry.names(family):
                return f"{family} '{name}' is not registered"
            ok, reason = registry.available(registry.get(family, name), device, precision)
            if not ok:
                return reason
        return None

    return check


def unavailable(config: LMConfig, device: str, precision: str) -> str | None:
    """Why `config`'s mixer, ffn, chosen attention impl or scan cannot run here (None: they can)."""
    parts = [("mixer", config.mixer), ("ffn", config.ffn)]
    if "attention" in config.mixer_params:
        parts.append(("attention", config.mixer_params["attention"]))
    if config.mixer_params.get("scan") == "triton":  # Mamba's Triton scan: where mamba_triton runs
        parts.append(("mixer", "mamba_triton"))
    return parts_available(*parts)(device, precision)


def attention_sizes(d_model: int, values: dict[str, Any]) -> None:
    """Reject sizes the attention mixer cannot run: heads must divide d_model, and RoPE
    rotates pairs, so it needs an even head dim (the mixer would fail only at forward)."""
    heads = values["heads"]
    if d_model % heads or (values.get("positional") == "rope" and (d_model // heads) % 2):
        raise ValueError(f"d_model={d_model} does not split into {heads} heads"
                         f"{' of even size (RoPE)' if values.get('positional') == 'rope' else ''}")
    registry.get("attention", values["attention"])  # an unknown name fails here, with the valid ones


def lm_preset(name: str, mixer: str, ffn: str, params: dict[str, Any], doc: str,
              mixer_keys: tuple[str, ...] = (), ffn_keys: tuple[str, ...] = (),
              check_sizes: Callable[[int, dict[str, Any]], None] | None = None):
    """Register preset `name`: `mixer_keys`/`ffn_keys` of its params go to the mixer/ffn;
    `positional` and `norm` go to the LMConfig; `check_sizes(d_model, params)` raises
    ValueError for a size the preset cannot run."""

    def make(vocab_size: int = SIZE["vocab_size"], d_model: int = SIZE["d_model"],
             n_layers: int = SIZE["n_layers"], max_seq_len: int = SIZE["max_seq_len"], **given: Any) -> LMConfig:
        values = {**params, **given}
        unknown = set(values) - set(params)
        if unknown:
            raise TypeError(f"model {name} takes no parameter {sorted(unknown)}; valid: {sorted(params)}")
        if check_sizes:
            check_sizes(d_model, values)
        return LMConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, max_seq_len=max_seq_len,
                        mixer=mixer, mixer_params={k: values[k] for k in mixer_keys},
                        ffn=ffn, ffn_params={k: values[k] for k in ffn_keys},
                        positional=values.get("positional", "none"), norm=values.get("norm", "pre"))

    make.__name__ = name
    make.__doc__ = doc
    register_kwargs = dict(params=params, doc=doc, requires=(parts_available(("mixer", mixer), ("ffn", ffn)),))
    return registry.register("model", name, **register_kwargs)(make)


# activation: the MLP's (or each expert's) nonlinearity: relu, gelu, gelu_tanh, swiglu
# (swiglu's gate makes the ffn 1.5x larger at the same width; a parameter budget
# narrows it to match).
lm_preset("transformer", "attention", "mlp",
          {**ATTENTION, "positional": "rope", "norm": "pre", "activation": "gelu"},
          "Transformer: causal self-attention (any attention impl) + MLP",
          mixer_keys=ATTENTION_KEYS, ffn_keys=("activation",), check_sizes=attention_sizes)
# capacity_factor = experts / top_k: no token is ever dropped, so decoding one token at a
# time equals the full forward; lower it to study token dropping (then they differ).
# top_k 1 is Switch routing (the raw gate), top_k > 1 renormalises the k gates.
lm_preset("moe_transformer", "attention", "moe",
          {**ATTENTION, "positional": "rope", "norm": "pre", "activation": "gelu",
           "experts": 4, "top_k": 2, "capacity_factor": 2.0},
          "Transformer with a mixture-of-experts FFN", mixer_keys=ATTENTION_KEYS,
          ffn_keys=("activation", "experts", "top_k", "capacity_factor"), check_sizes=attention_sizes)
RECURRENT = {"norm": "pre", "activation": "gelu"}
lm_preset("lstm", "lstm_torch", "mlp", RECURRENT, "LSTM (fused nn.LSTM) mixer + MLP blocks", ffn_keys=("activation",))
lm_preset("gru", "gru_torch", "mlp", RECURRENT, "GRU (fused nn.GRU) mixer + MLP blocks", ffn_keys=("activation",))
lm_preset("rnn", "rnn_torch", "mlp", RECURRENT, "Elman RNN (fused nn.RNN) mixer + MLP blocks", ffn_keys=("activation",))
lm_preset("lstm_cell", "lstm", "mlp", RECURRENT, "LSTM (our cell, a loop over time) mixer + MLP blocks",
          ffn_keys=("activation",))
lm_preset("gru_cell", "gru", "mlp", RECURRENT, "GRU (our cell, a loop over time) mixer + MLP blocks",
          ffn_keys=("activation",))
lm_preset("rnn_cell", "rnn", "mlp", RECURRENT, "Elman RNN (our cell, a loop over time) mixer + MLP blocks",
          ffn_keys=("activation",))
# scan: the Mamba mixer's scan ("chunked", "sequential", "triton"). On a 2-core CPU (interleaved
# ratios) the chunked parallel scan beat the sequential loop ~1.4x forward and ~2.4x per train step
# at d_model 120, batch 2; at batch 32, d_model 80 a train step was even and a forward ~0.8x.
lm_preset("mamba", "mamba", "none", {"norm": "pre", "scan": "chunked"},
          "Mamba (selective SSM) blocks, no separate FFN", mixer_keys=("scan",))
lm_preset("s4d", "s4d", "mlp", {"norm": "pre", "activation": "gelu"}, "S4D (diagonal SSM) mixer + MLP blocks",
          ffn_keys=("activation",))
