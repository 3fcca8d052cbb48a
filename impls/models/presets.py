"""Named decoder-only LMs (family "model"): one mixer per architecture.

Each preset is a function (vocab_size, d_model, n_layers, max_seq_len, **params)
-> LMConfig; `params` are what a suite may sweep (positional, norm, heads...).
A preset is available where its mixer and ffn are.
"""
from __future__ import annotations

from typing import Any

from impls import registry
from impls.models.lm import LMConfig

# The size arguments every preset takes, with defaults for a quick build.
SIZE = {"vocab_size": 256, "d_model": 128, "n_layers": 2, "max_seq_len": 2048}


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


def lm_preset(name: str, mixer: str, ffn: str, params: dict[str, Any], doc: str,
              mixer_keys: tuple[str, ...] = (), ffn_keys: tuple[str, ...] = ()):
    """Register preset `name`: `mixer_keys`/`ffn_keys` of its params go to the mixer/ffn;
    `positional` and `norm` go to the LMConfig."""

    def make(vocab_size: int = SIZE["vocab_size"], d_model: int = SIZE["d_model"],
             n_layers: int = SIZE["n_layers"], max_seq_len: int = SIZE["max_seq_len"], **given: Any) -> LMConfig:
        values = {**params, **given}
        unknown = set(values) - set(params)
        if unknown:
            raise TypeError(f"model {name} takes no parameter {sorted(unknown)}; valid: {sorted(params)}")
        return LMConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, max_seq_len=max_seq_len,
                        mixer=mixer, mixer_params={k: values[k] for k in mixer_keys},
                        ffn=ffn, ffn_params={k: values[k] for k in ffn_keys},
                        positional=values.get("positional", "none"), norm=values.get("norm", "pre"))

    make.__name__ = name
    make.__doc__ = doc
    register_kwargs = dict(params=params, doc=doc, requires=(parts_available(("mixer", mixer), ("ffn", ffn)),))
    return registry.register("model", name, **register_kwargs)(make)


# kv_heads < heads: grouped-query attention (1: multi-query); None: one KV head per query head
lm_preset("transformer", "attention", "mlp", {"heads": 4, "kv_heads": None, "positional": "rope", "norm": "pre"},
          "Transformer: causal self-attention + MLP", mixer_keys=("heads", "kv_heads"))
# capacity_factor = experts / top_k: no token is ever dropped, so decoding one token at a
# time equals the full forward; lower it to study token dropping (then they differ).
lm_preset("moe_transformer", "attention", "moe",
          {"heads": 4, "positional": "rope", "norm": "pre", "experts": 4, "top_k": 2, "capacity_factor": 2.0},
          "Transformer with a mixture-of-experts FFN", mixer_keys=("heads",),
          ffn_keys=("experts", "top_k", "capacity_factor"))
lm_preset("lstm", "lstm_torch", "mlp", {"norm": "pre"}, "LSTM (fused nn.LSTM) mixer + MLP blocks")
lm_preset("gru", "gru_torch", "mlp", {"norm": "pre"}, "GRU (fused nn.GRU) mixer + MLP blocks")
lm_preset("rnn", "rnn_torch", "mlp", {"norm": "pre"}, "Elman RNN (fused nn.RNN) mixer + MLP blocks")
# scan: the Mamba mixer's scan ("sequential", "chunked", "triton"); on a CPU the
# sequential reference was the fastest at these sizes, so it is the default here.
lm_preset("mamba", "mamba", "none", {"norm": "pre", "scan": "sequential"},
          "Mamba (selective SSM) blocks, no separate FFN", mixer_keys=("scan",))
lm_preset("s4d", "s4d", "mlp", {"norm": "pre"}, "S4D (diagonal SSM) mixer + MLP blocks")
