"""Load a GPT-2-format checkpoint from a local folder into a LanguageModel.

The folder holds config.json (n_embd, n_layer, n_head, vocab_size, n_positions,
layer_norm_epsilon) and model.safetensors or pytorch_model.bin (read with
torch.load(weights_only=True), so no pickled code runs). GPT-2 is a pre-norm
Transformer with learned absolute positions, a GELU MLP of width 4 * n_embd
and a head tied to the token embedding.

GPT-2 stores its projections as Conv1D, y = x @ W + b with W (in, out): the
transpose of nn.Linear's weight. Its attention projections have biases; the
attention mixer's are bias-free, so the loader gives those projections biased
nn.Linear layers of the same shape (nothing else about the block changes).
`save_gpt2` writes the inverse mapping, so a model round-trips exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from impls.models.lm import LanguageModel, LMConfig

# GPT-2 uses the tanh approximation of GELU; take it when the mlp has it.
GPT2_ACTIVATION = "gelu_tanh"


def gpt2_config(config: dict) -> LMConfig:
    """The LMConfig of a GPT-2 config.json dictionary."""
    return LMConfig(vocab_size=config["vocab_size"], d_model=config["n_embd"], n_layers=config["n_layer"],
                    mixer="attention", mixer_params={"heads": config["n_head"]},
                    ffn="mlp", ffn_params={"activation": GPT2_ACTIVATION, "hidden_multiple": 4},
                    positional="learned", norm="pre", max_seq_len=config["n_positions"], tie_weights=True,
                    norm_eps=config.get("layer_norm_epsilon", 1e-5))


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors with any leading "transformer." removed."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder}: neither model.safetensors nor pytorch_model.bin")
    return {k.removeprefix("transformer."): v for k, v in state.items()}


def _biased(linear: nn.Linear) -> nn.Linear:
    return nn.Linear(linear.in_features, linear.out_features, bias=True,
                     device=linear.weight.device, dtype=linear.weight.dtype)


def _layer_norm(state: dict[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    return {"weight": state[f"{key}.weight"], "bias": state[f"{key}.bias"]}


def load_into(model: LanguageModel, state: dict[str, torch.Tensor]) -> None:
    """Copy GPT-2 tensors (names without "transformer.") into `model` (built by gpt2_config)."""
    d = model.config.d_model
    with torch.no_grad():
        model.embed.weight.copy_(state["wte.weight"])
        model.positional.table.copy_(state["wpe.weight"])
        for i, block in enumerate(model.blocks):
            prefix = f"h.{i}"
            attn = block.mixer
            attn.q_proj, attn.kv_proj, attn.out_proj = map(_biased, (attn.q_proj, attn.kv_proj, attn.out_proj))
            qkv_w, qkv_b = state[f"{prefix}.attn.c_attn.weight"].T, state[f"{prefix}.attn.c_attn.bias"]  # (3d, d)
            # c_attn's outputs are [q | k | v]; kv_proj's are [k | v], each split into heads alike.
            attn.q_proj.weight.copy_(qkv_w[:d]), attn.q_proj.bias.copy_(qkv_b[:d])
            attn.kv_proj.weight.copy_(qkv_w[d:]), attn.kv_proj.bias.copy_(qkv_b[d:])
            attn.out_proj.weight.copy_(state[f"{prefix}.attn.c_proj.weight"].T)
            attn.out_proj.bias.copy_(state[f"{prefix}.attn.c_proj.bias"])
            block.ffn.up.weight.copy_(state[f"{prefix}.mlp.c_fc.weight"].T)
            block.ffn.up.bias.copy_(state[f"{prefix}.mlp.c_fc.bias"])
            block.ffn.down.weight.copy_(state[f"{prefix}.mlp.c_proj.weight"].T)
            block.ffn.down.bias.copy_(state[f"{prefix}.mlp.c_proj.bias"])
            block.norm1.load_state_dict(_layer_norm(state, f"{prefix}.ln_1"))
            block.norm2.load_state_dict(_layer_norm(state, f"{prefix}.ln_2"))
        model.norm.load_state_dict(_layer_norm(state, "ln_f"))


def from_pretrained(path: str | Path) -> LanguageModel:
    """A LanguageModel with the weights of the GPT-2 checkpoint in folder `path`, in eval mode."""
    folder = Path(path)
    config = gpt2_config(json.loads((folder / "config.json").read_text()))
    model = LanguageModel(config)
    load_into(model, read_weights(folder))
    return model.eval()


def gpt2_state(model: LanguageModel) -> dict[str, torch.Tensor]:
    """The inverse of load_into: GPT-2 tensor names and Conv1D layouts (bias-free projections
    are written with zero biases)."""
    def bias(linear: nn.Linear) -> torch.Tensor:
        return linear.bias if linear.bias is not None else torch.zeros(linear.out_features)

    def norm(module: nn.LayerNorm, key: str) -> dict[str, torch.Tensor]:
        return {f"{key}.weight": module.weight, f"{key}.bias": module.bias}

    state = {"wte.weight": model.embed.weight, "wpe.weight": model.positional.table, **norm(model.norm, "ln_f")}
    for i, block in enumerate(model.blocks):
        p, attn = f"h.{i}", block.mixer
        state |= {
            f"{p}.attn.c_attn.weight": torch.cat([attn.q_proj.weight, attn.kv_proj.weight]).T,
            f"{p}.attn.c_attn.bias": torch.cat([bias(attn.q_proj), bias(attn.kv_proj)]),
            f"{p}.attn.c_proj.weight": attn.out_proj.weight.T, f"{p}.attn.c_proj.bias": bias(attn.out_proj),
            f"{p}.mlp.c_fc.weight": block.ffn.up.weight.T, f"{p}.mlp.c_fc.bias": block.ffn.up.bias,
            f"{p}.mlp.c_proj.weight": block.ffn.down.weight.T, f"{p}.mlp.c_proj.bias": block.ffn.down.bias,
            **norm(block.norm1, f"{p}.ln_1"), **norm(block.norm2, f"{p}.ln_2"),
        }
    return {f"transformer.{k}": v.detach().contiguous().clone() for k, v in state.items()}


def save_gpt2(model: LanguageModel, path: str | Path) -> None:
    """Write `model` (a GPT-2-shaped LanguageModel) as config.json + model.safetensors."""
    from safetensors.torch import save_file

    c = model.config
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "gpt2", "n_embd": c.d_model, "n_layer": c.n_layers, "n_head": c.mixer_params["heads"],
              "vocab_size": c.vocab_size, "n_positions": c.max_seq_len, "layer_norm_epsilon": c.norm_eps}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(gpt2_state(model), str(folder / "model.safetensors"))
