"""Load a GPT-2-format checkpoint from a local folder into a LanguageModel.

The folder holds config.json (n_embd, n_layer, n_head, vocab_size, n_positions,
layer_norm_epsilon, and optionally activation_function, n_inner,
tie_word_embeddings) and model.safetensors or pytorch_model.bin (read with
torch.load(weights_only=True), so no pickled code runs). GPT-2 is a pre-norm
Transformer with learned absolute positions, an MLP of width n_inner (default
4 * n_embd) and, unless the config unties it, a head tied to the token embedding.

A config the LM cannot reproduce exactly (another activation, unscaled or
layer-scaled attention, a separate lm_head.weight the config says is tied) is
refused with an error naming the key: the loader never gives different logits
than the original.

GPT-2 stores its projections as Conv1D, y = x @ W + b with W (in, out): the
transpose of nn.Linear's weight. Its c_attn is [q | k | v], as the attention
mixer's fused qkv_proj. Its attention projections have biases; the
attention mixer's are bias-free, so the loader gives those projections biased
nn.Linear layers of the same shape (nothing else about the block changes).
`save_gpt2` writes the inverse mapping, so a model round-trips exactly.

The blocks attend through "sdpa" (torch's fused kernel wherever one applies)
unless another registered impl is named. The preset "pretrained" (params:
checkpoint, attention) makes a checkpoint a model a suite can benchmark; its
sizes are the checkpoint's own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from impls import registry
from impls.models.lm import LanguageModel, LMConfig
from impls.models.presets import parts_available

# config.json's activation_function (transformers' names) -> the mlp's activation.
# gelu_new and gelu_pytorch_tanh are both the tanh approximation GPT-2 was trained with.
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
SAVED_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
DEFAULT_ACTIVATION = "gelu_new"  # transformers' GPT2Config default
DEFAULT_ATTENTION = "sdpa"


class CheckpointError(ValueError):
    """A checkpoint this loader cannot reproduce exactly; the message names the file and key."""


def _refuse_unsupported(config: dict, where: str) -> None:
    if config.get("model_type", "gpt2") != "gpt2":
        raise CheckpointError(f"{where}: model_type '{config['model_type']}' is not GPT-2; valid: gpt2")
    if not config.get("scale_attn_weights", True):
        raise CheckpointError(f"{where}: scale_attn_weights false (unscaled attention) is not supported; valid: true")
    if config.get("scale_attn_by_inverse_layer_idx", False):
        raise CheckpointError(f"{where}: scale_attn_by_inverse_layer_idx true is not supported; valid: false")


def gpt2_config(config: dict, attention: str = DEFAULT_ATTENTION, where: str = "config.json") -> LMConfig:
    """The LMConfig of a GPT-2 config.json dictionary (`where` names it in errors);
    `attention` is the registered attention impl the blocks run."""
    _refuse_unsupported(config, where)
    name = config.get("activation_function", DEFAULT_ACTIVATION)
    if name not in ACTIVATIONS:
        raise CheckpointError(f"{where}: activation_function '{name}' is not supported; "
                              f"valid: {', '.join(ACTIVATIONS)}")
    hidden = config.get("n_inner") or 4 * config["n_embd"]
    return LMConfig(vocab_size=config["vocab_size"], d_model=config["n_embd"], n_layers=config["n_layer"],
                    mixer="attention", mixer_params={"heads": config["n_head"], "attention": attention},
                    ffn="mlp", ffn_params={"activation": ACTIVATIONS[name], "hidden": hidden},
                    positional="learned", norm="pre", max_seq_len=config["n_positions"],
                    tie_weights=config.get("tie_word_embeddings", True),
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


def check_head(state: dict[str, torch.Tensor], tied: bool, where: str) -> None:
    """A tied config must not come with a different lm_head.weight (transformers would
    silently use wte); an untied one must come with one."""
    head = state.get("lm_head.weight")
    if tied and head is not None and not torch.equal(head, state["wte.weight"]):
        raise CheckpointError(f"{where}: tie_word_embeddings is true (or unset) but lm_head.weight differs "
                              f"from wte.weight; set tie_word_embeddings: false to use the separate head")
    if not tied and head is None:
        raise CheckpointError(f"{where}: tie_word_embeddings is false but the checkpoint has no lm_head.weight")


def _biased(linear: nn.Linear) -> nn.Linear:
    return nn.Linear(linear.in_features, linear.out_features, bias=True,
                     device=linear.weight.device, dtype=linear.weight.dtype)


def _layer_norm(state: dict[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    return {"weight": state[f"{key}.weight"], "bias": state[f"{key}.bias"]}


def load_into(model: LanguageModel, state: dict[str, torch.Tensor]) -> None:
    """Copy GPT-2 tensors (names without "transformer.") into `model` (built by gpt2_config)."""
    with torch.no_grad():
        model.embed.weight.copy_(state["wte.weight"])
        model.positional.table.copy_(state["wpe.weight"])
        if not model.config.tie_weights:
            model.head.weight.copy_(state["lm_head.weight"])
        for i, block in enumerate(model.blocks):
            prefix = f"h.{i}"
            attn = block.mixer
            attn.qkv_proj, attn.out_proj = map(_biased, (attn.qkv_proj, attn.out_proj))
            attn.qkv_proj.weight.copy_(state[f"{prefix}.attn.c_attn.weight"].T)  # (3d, d): [q | k | v]
            attn.qkv_proj.bias.copy_(state[f"{prefix}.attn.c_attn.bias"])
            attn.out_proj.weight.copy_(state[f"{prefix}.attn.c_proj.weight"].T)
            attn.out_proj.bias.copy_(state[f"{prefix}.attn.c_proj.bias"])
            block.ffn.up.weight.copy_(state[f"{prefix}.mlp.c_fc.weight"].T)
            block.ffn.up.bias.copy_(state[f"{prefix}.mlp.c_fc.bias"])
            block.ffn.down.weight.copy_(state[f"{prefix}.mlp.c_proj.weight"].T)
            block.ffn.down.bias.copy_(state[f"{prefix}.mlp.c_proj.bias"])
            block.norm1.load_state_dict(_layer_norm(state, f"{prefix}.ln_1"))
            block.norm2.load_state_dict(_layer_norm(state, f"{prefix}.ln_2"))
        model.norm.load_state_dict(_layer_norm(state, "ln_f"))


def checkpoint_config(folder: Path, attention: str = DEFAULT_ATTENTION) -> LMConfig:
    """The LMConfig of the GPT-2 checkpoint in `folder`, from its config.json alone."""
    where = str(folder / "config.json")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{where}: no such file (a GPT-2 checkpoint folder holds config.json "
                                f"and model.safetensors or pytorch_model.bin)")
    return gpt2_config(json.loads((folder / "config.json").read_text()), attention, where)


def from_pretrained(path: str | Path, attention: str = DEFAULT_ATTENTION) -> LanguageModel:
    """A LanguageModel with the weights of the GPT-2 checkpoint in folder `path`, in eval
    mode, running the registered attention impl `attention`."""
    folder = Path(path)
    config = checkpoint_config(folder, attention)
    state = read_weights(folder)
    check_head(state, config.tie_weights, str(folder / "config.json"))
    model = LanguageModel(config)
    load_into(model, state)
    return model.eval()


def gpt2_state(model: LanguageModel) -> dict[str, torch.Tensor]:
    """The inverse of load_into: GPT-2 tensor names and Conv1D layouts (bias-free projections
    are written with zero biases; an untied head as lm_head.weight)."""
    def bias(linear: nn.Linear) -> torch.Tensor:
        return linear.bias if linear.bias is not None else torch.zeros(linear.out_features)

    def norm(module: nn.LayerNorm, key: str) -> dict[str, torch.Tensor]:
        return {f"{key}.weight": module.weight, f"{key}.bias": module.bias}

    state = {"wte.weight": model.embed.weight, "wpe.weight": model.positional.table, **norm(model.norm, "ln_f")}
    for i, block in enumerate(model.blocks):
        p, attn = f"h.{i}", block.mixer
        state |= {
            f"{p}.attn.c_attn.weight": attn.qkv_proj.weight.T, f"{p}.attn.c_attn.bias": bias(attn.qkv_proj),
            f"{p}.attn.c_proj.weight": attn.out_proj.weight.T, f"{p}.attn.c_proj.bias": bias(attn.out_proj),
            f"{p}.mlp.c_fc.weight": block.ffn.up.weight.T, f"{p}.mlp.c_fc.bias": block.ffn.up.bias,
            f"{p}.mlp.c_proj.weight": block.ffn.down.weight.T, f"{p}.mlp.c_proj.bias": block.ffn.down.bias,
            **norm(block.norm1, f"{p}.ln_1"), **norm(block.norm2, f"{p}.ln_2"),
        }
    state = {f"transformer.{k}": v for k, v in state.items()}
    if not model.config.tie_weights:
        state["lm_head.weight"] = model.head.weight
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def save_gpt2(model: LanguageModel, path: str | Path) -> None:
    """Write `model` (a GPT-2-shaped LanguageModel) as config.json + model.safetensors."""
    from safetensors.torch import save_file

    c = model.config
    activation = c.ffn_params.get("activation", "gelu")
    if activation not in SAVED_ACTIVATIONS:
        raise ValueError(f"GPT-2 has no {activation} MLP; valid: {', '.join(SAVED_ACTIVATIONS)}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "gpt2", "n_embd": c.d_model, "n_layer": c.n_layers, "n_head": c.mixer_params["heads"],
              "vocab_size": c.vocab_size, "n_positions": c.max_seq_len, "layer_norm_epsilon": c.norm_eps,
              "activation_function": SAVED_ACTIVATIONS[activation], "n_inner": model.blocks[0].ffn.hidden,
              "tie_word_embeddings": c.tie_weights}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(gpt2_state(model), str(folder / "model.safetensors"))


@dataclass
class Checkpoint:
    """A GPT-2 checkpoint folder as a model config: build() loads it."""

    folder: str
    attention: str = DEFAULT_ATTENTION

    def build(self) -> LanguageModel:
        return from_pretrained(self.folder, self.attention)

    def lm_config(self) -> LMConfig:
        """The model's config, read without its weights."""
        return checkpoint_config(Path(self.folder), self.attention)


@registry.register("model", "pretrained", params={"checkpoint": None, "attention": DEFAULT_ATTENTION},
                   requires=(parts_available(("mixer", "attention"), ("ffn", "mlp")),), fixed_size=True,
                   doc="a local GPT-2-format checkpoint (params: checkpoint: path/to/folder)")
def pretrained(checkpoint: str | None = None, attention: str = DEFAULT_ATTENTION) -> Checkpoint:
    """The checkpoint in folder `checkpoint` (relative to where the harness runs);
    `attention` is the registered attention impl its blocks run."""
    if not checkpoint:
        raise ValueError("model pretrained needs params: {checkpoint: path/to/folder} "
                         "(config.json + model.safetensors or pytorch_model.bin)")
    registry.get("attention", attention)  # an unknown name fails here, with the valid ones
    return Checkpoint(str(checkpoint), attention)
