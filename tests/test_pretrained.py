"""GPT-2 checkpoints load into LanguageModel with the original's logits."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from impls import models, registry
from impls.models import from_pretrained, pretrained
from impls.models.lm import LanguageModel

CONFIG = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 61, "n_positions": 40, "layer_norm_epsilon": 1e-5}


# transformers' activation_function names, as the reference applies them
REFERENCE_ACTIVATIONS = {"gelu_new": lambda h: F.gelu(h, approximate="tanh"),
                         "gelu_pytorch_tanh": lambda h: F.gelu(h, approximate="tanh"),
                         "gelu": F.gelu, "relu": F.relu}


def gpt2_reference(state: dict[str, torch.Tensor], config: dict, tokens: torch.Tensor) -> torch.Tensor:
    """GPT-2's forward written straight from its checkpoint tensors (Conv1D: x @ W + b),
    with config.json's activation_function and, when untied, its lm_head."""
    s = {k.removeprefix("transformer."): v for k, v in state.items()}
    d, h = config["n_embd"], config["n_head"]
    eps = config["layer_norm_epsilon"]
    act = REFERENCE_ACTIVATIONS[config.get("activation_function", "gelu_new")]

    def ln(x, key):
        return F.layer_norm(x, (d,), s[f"{key}.weight"], s[f"{key}.bias"], eps)

    def conv1d(x, key):
        return x @ s[f"{key}.weight"] + s[f"{key}.bias"]

    b, t = tokens.shape
    x = s["wte.weight"][tokens] + s["wpe.weight"][:t]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for i in range(config["n_layer"]):
        q, k, v = conv1d(ln(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn").split(d, dim=-1)
        q, k, v = (z.view(b, t, h, d // h).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(d // h)).masked_fill(~causal, float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + conv1d(y, f"h.{i}.attn.c_proj")
        hidden = act(conv1d(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc"))
        x = x + conv1d(hidden, f"h.{i}.mlp.c_proj")
    head = s["wte.weight"] if config.get("tie_word_embeddings", True) else s["lm_head.weight"]
    return ln(x, "ln_f") @ head.T


def random_gpt2_state(seed: int, config: dict = CONFIG) -> dict[str, torch.Tensor]:
    """A GPT-2 checkpoint of random tensors (biases and LayerNorms too, an lm_head when
    untied), fp64."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LanguageModel(pretrained.gpt2_config(config))
    state = pretrained.gpt2_state(model)
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if k.endswith("ln_1.weight") else 0.0)).double()
            for k, v in state.items()}


def _write(folder, state: dict[str, torch.Tensor], fmt: str, config: dict = CONFIG) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")


def _load(folder) -> LanguageModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_pretrained(folder)


def _tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CONFIG["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_loaded_checkpoint_gives_the_reference_gpt2_logits(tmp_path, fmt):
    state = random_gpt2_state(0)
    _write(tmp_path, state, fmt)
    model = _load(tmp_path).double()
    with torch.no_grad():
        torch.testing.assert_close(model(_tokens()), gpt2_reference(state, CONFIG, _tokens()), rtol=0, atol=1e-9)


@pytest.mark.parametrize("changes", [
    {"activation_function": "gelu_new"}, {"activation_function": "gelu_pytorch_tanh"},
    {"activation_function": "gelu"}, {"activation_function": "relu"}, {"n_inner": 24},
    {"tie_word_embeddings": False}, {"tie_word_embeddings": False, "activation_function": "relu", "n_inner": 40},
])
def test_config_variants_give_the_reference_logits(tmp_path, changes):
    config = {**CONFIG, **changes}
    state = random_gpt2_state(4, config)
    assert ("lm_head.weight" in state) == (not config.get("tie_word_embeddings", True))
    _write(tmp_path, state, "safetensors", config)
    model = _load(tmp_path).double()
    with torch.no_grad():
        torch.testing.assert_close(model(_tokens()), gpt2_reference(state, config, _tokens()), rtol=0, atol=1e-9)


def test_the_activations_differ_so_the_variants_test_something():
    h = torch.linspace(-3, 3, 61, dtype=torch.float64)
    outputs = [REFERENCE_ACTIVATIONS[name](h) for name in ("gelu_new", "gelu", "relu")]
    assert all((a - b).abs().max() > 1e-4 for i, a in enumerate(outputs) for b in outputs[i + 1:])


@pytest.mark.parametrize("changes, key", [
    ({"activation_function": "quick_gelu"}, "activation_function"),
    ({"scale_attn_weights": False}, "scale_attn_weights"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ({"model_type": "gpt_neo"}, "model_type"),
])
def test_a_config_the_lm_cannot_reproduce_is_refused_naming_the_key(tmp_path, changes, key):
    _write(tmp_path, random_gpt2_state(0), "safetensors", {**CONFIG, **changes})
    with pytest.raises(pretrained.CheckpointError, match=f"config.json: {key}"):
        _load(tmp_path)


def test_a_separate_head_under_a_tied_config_is_refused(tmp_path):
    state = random_gpt2_state(0)
    state["lm_head.weight"] = torch.randn(state["transformer.wte.weight"].shape, dtype=torch.float64)
    _write(tmp_path, state, "bin")
    with pytest.raises(pretrained.CheckpointError, match="lm_head.weight differs from wte.weight"):
        _load(tmp_path)


def test_a_head_equal_to_the_embedding_loads_tied(tmp_path):
    """transformers' pytorch_model.bin stores the tied head as lm_head.weight too."""
    state = random_gpt2_state(0)
    state["lm_head.weight"] = state["transformer.wte.weight"].clone()
    _write(tmp_path, state, "bin")
    model = _load(tmp_path)
    assert model.head.weight is model.embed.weight


def test_an_untied_config_without_a_head_is_refused(tmp_path):
    _write(tmp_path, random_gpt2_state(0), "safetensors", {**CONFIG, "tie_word_embeddings": False})
    with pytest.raises(pretrained.CheckpointError, match="no lm_head.weight"):
        _load(tmp_path)


@pytest.mark.parametrize("changes", [{}, {"tie_word_embeddings": False, "activation_function": "relu", "n_inner": 40}])
def test_round_trip_through_gpt2_format_keeps_logits_identical(tmp_path, changes):
    config = {**CONFIG, **changes}
    _write(tmp_path / "a", random_gpt2_state(3, config), "safetensors", config)
    model = _load(tmp_path / "a")
    pretrained.save_gpt2(model, tmp_path / "b")
    again = _load(tmp_path / "b")
    assert again.config == model.config
    with torch.no_grad():
        assert torch.equal(model(_tokens(2)), again(_tokens(2)))


def test_the_pretrained_preset_builds_the_checkpoint_with_the_chosen_attention(tmp_path):
    state = random_gpt2_state(0)
    _write(tmp_path, state, "safetensors")
    model = models.build("pretrained", "model", checkpoint=str(tmp_path), attention="chunked").double()
    assert all(block.mixer.attention_fn is registry.get("attention", "chunked").fn for block in model.blocks)
    with torch.no_grad():  # chunked accumulates its online softmax in float32
        torch.testing.assert_close(model(_tokens()), gpt2_reference(state, CONFIG, _tokens()), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="checkpoint: path/to/folder"):
        models.build("pretrained", "model")


def test_gelu_tanh_is_gpt2s_formula():
    from impls.ffn.mlp import activate

    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    gpt2 = 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))
    torch.testing.assert_close(activate(x, "gelu_tanh"), gpt2)
    assert (activate(x, "gelu") - gpt2).abs().max() > 1e-5  # the exact GELU is a different function


def test_matches_huggingface_gpt2(tmp_path):
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (a large install; the hand-written GPT-2 "
                               "reference above checks the same mapping)")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=61, n_positions=40)
    original = transformers.GPT2LMHeadModel(config).eval()
    original.save_pretrained(tmp_path)
    model = _load(tmp_path)
    tokens = torch.randint(0, 61, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), original(tokens).logits, rtol=1e-5, atol=1e-5)


def test_greedy_tokens_equal_huggingface_generate_and_the_fused_kernel_is_the_default(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    from impls.decoding import generate

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=97, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    original = transformers.GPT2LMHeadModel(config).eval()
    original.save_pretrained(tmp_path)
    model = _load(tmp_path)
    assert {block.mixer.attention_name for block in model.blocks} == {"sdpa"}
    prompt = torch.randint(0, 97, (2, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # no EOS: both decode all 24 tokens
        theirs = original.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24,
                                   do_sample=False, eos_token_id=None, pad_token_id=0)[:, 7:]
    assert torch.equal(generate(model, prompt, 24).tokens, theirs)
