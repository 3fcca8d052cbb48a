"""GPT-2 checkpoints load into LanguageModel with the original's logits."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from impls.models import pretrained
from impls.models.lm import LanguageModel

CONFIG = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 61, "n_positions": 40, "layer_norm_epsilon": 1e-5}


def gpt2_reference(state: dict[str, torch.Tensor], config: dict, tokens: torch.Tensor, gelu: str) -> torch.Tensor:
    """GPT-2's forward written straight from its checkpoint tensors (Conv1D: x @ W + b)."""
    s = {k.removeprefix("transformer."): v for k, v in state.items()}
    d, h = config["n_embd"], config["n_head"]
    eps = config["layer_norm_epsilon"]

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
        hidden = F.gelu(conv1d(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc"), approximate=gelu)
        x = x + conv1d(hidden, f"h.{i}.mlp.c_proj")
    return ln(x, "ln_f") @ s["wte.weight"].T


def random_gpt2_state(seed: int) -> dict[str, torch.Tensor]:
    """A GPT-2 checkpoint of random tensors (biases and LayerNorms too), fp64."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LanguageModel(pretrained.gpt2_config(CONFIG))
    state = pretrained.gpt2_state(model)
    gen = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if k.endswith("ln_1.weight") else 0.0)).double()
            for k, v in state.items()}


def _write(folder, state: dict[str, torch.Tensor], fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")


def _load(folder) -> LanguageModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pretrained.from_pretrained(folder)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_loaded_checkpoint_gives_the_reference_gpt2_logits(tmp_path, fmt):
    state = random_gpt2_state(0)
    _write(tmp_path, state, fmt)
    model = _load(tmp_path).double()
    tokens = torch.randint(0, CONFIG["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(1))
    # The reference uses the activation the loader could pick: exact for every tensor's layout.
    gelu = "tanh"
    expected = gpt2_reference(state, CONFIG, tokens, gelu)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), expected, rtol=0, atol=1e-9)


def test_round_trip_through_gpt2_format_keeps_logits_identical(tmp_path):
    _write(tmp_path / "a", random_gpt2_state(3), "safetensors")
    model = _load(tmp_path / "a")
    pretrained.save_gpt2(model, tmp_path / "b")
    again = _load(tmp_path / "b")
    tokens = torch.randint(0, CONFIG["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model(tokens), again(tokens))


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
