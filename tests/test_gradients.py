"""One backward through every registered mixer and model that claims training reaches
every parameter: none is left without a gradient, or with an all-zero one.

Parametrised from the registry (families mixer, model, seq2seq), so a new impl is
checked without being listed here. Each parameter of these modules shapes the
output, so each is expected a gradient from a random projection of it. An impl
registered with backward=False is skipped, with that reason, here and by the
harness (its train_step and train cases: the last tests). Triton impls run on the
CPU only under TRITON_INTERPRET=1: test_selective_scan_triton.py runs their cases of
this file in such a process.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from harness import worker
from harness.case import Case
from impls import models, registry
from impls.mixers.gru import GRU
from impls.models import presets, pretrained
from impls.models.lm import LanguageModel
from tests.conftest import make_case

FAMILIES = ("mixer", "model", "seq2seq")
CASES = [pytest.param(family, name, id=f"{family}-{name}") for family in FAMILIES for name in registry.names(family)]
SIZE = {"d_model": 16, "n_layers": 1, "max_seq_len": 32}
BATCH, LENGTH, VOCAB = 2, 12, 40


def without_gradient(module: nn.Module) -> list[str]:
    """The trainable parameters that a backward left with no gradient or an all-zero one."""
    return [name for name, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or not bool(p.grad.any()))]


def random_projection(out: torch.Tensor) -> torch.Tensor:
    """A scalar that depends on every output element, with seeded random weights."""
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=out.dtype)
    return (out * weights.to(out.device)).sum()


def _tokens(vocab: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (BATCH, LENGTH), generator=torch.Generator().manual_seed(seed))


def _mixer(impl: registry.Impl, device: str, tmp_path: Path) -> tuple[nn.Module, torch.Tensor]:
    mixer = impl.fn(SIZE["d_model"]).to(device)
    x = torch.randn(BATCH, LENGTH, SIZE["d_model"], generator=torch.Generator().manual_seed(1)).to(device)
    return mixer, random_projection(mixer(x))


def _model(impl: registry.Impl, device: str, tmp_path: Path) -> tuple[nn.Module, torch.Tensor]:
    if impl.fixed_size:  # a checkpoint's own sizes: write a tiny one
        model = models.build(impl.name, "model", checkpoint=str(_tiny_checkpoint(tmp_path)))
    else:
        model = models.build(impl.name, "model", vocab_size=VOCAB, **SIZE)
    model = model.to(device)
    logits = model(_tokens(model.config.vocab_size, seed=1).to(device))
    return model, random_projection(logits) + model.aux_loss()


def _seq2seq(impl: registry.Impl, device: str, tmp_path: Path) -> tuple[nn.Module, torch.Tensor]:
    model = models.build(impl.name, "seq2seq", src_vocab=VOCAB, tgt_vocab=VOCAB, **SIZE).to(device)
    return model, random_projection(model(_tokens(VOCAB, seed=1).to(device), _tokens(VOCAB, seed=2).to(device)))


BUILD = {"mixer": _mixer, "model": _model, "seq2seq": _seq2seq}


def _tiny_checkpoint(folder: Path) -> Path:
    """A GPT-2-format checkpoint of a randomly initialised 1-layer model, d_model 16."""
    config = {"model_type": "gpt2", "n_embd": 16, "n_layer": 1, "n_head": 4, "vocab_size": VOCAB, "n_positions": 32}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = pretrained.gpt2_state(LanguageModel(pretrained.gpt2_config(config)))
    (folder / "config.json").write_text(json.dumps(config))
    torch.save({k: v.detach().clone() for k, v in state.items()}, folder / "pytorch_model.bin")
    return folder


def device_here() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("family, name", CASES)
def test_one_backward_gives_every_parameter_a_gradient(family, name, tmp_path):
    impl = registry.get(family, name)
    if not impl.backward:
        pytest.skip(f"{family} {name} is forward-only (registered with backward=False)")
    ok, reason = registry.available(impl, device_here(), "fp32")
    if not ok:
        pytest.skip(reason)
    torch.manual_seed(0)
    module, loss = BUILD[family](impl, device_here(), tmp_path)
    loss.backward()
    assert list(module.parameters()), f"{family} {name} has no parameters to train"
    assert not without_gradient(module), f"no gradient reaches {without_gradient(module)}"


# ---- a forward-only mixer: the harness skips its training cases with the reason ----

@pytest.fixture
def forward_only_model():
    """A mixer registered with backward=False and a model preset that runs it, removed after."""
    registry.load_all()
    registry.register("mixer", "test_forward_only", backward=False)(type("ForwardOnlyGRU", (GRU,), {}))
    presets.lm_preset("test_forward_only_lm", "test_forward_only", "mlp", {"norm": "pre", "activation": "gelu"},
                      "a model whose mixer is forward-only", ffn_keys=("activation",))
    try:
        yield "test_forward_only_lm"
    finally:
        registry._REGISTRY["mixer"].pop("test_forward_only", None)  # keep other tests unaware of them
        registry._REGISTRY["model"].pop("test_forward_only_lm", None)


def _case(workload: str, impl: str, params: dict) -> Case:
    sizes = {"d_model": 16, "n_layers": 1, "batch": 2, "seed": 0}
    return make_case(workload, "model", impl, **sizes, **params)


@pytest.mark.parametrize("workload, params", [
    ("model", {"direction": "train_step", "seq_len": 8, "vocab_size": 50}),
    ("train", {"task": "selective_copy", "steps": 1, "seq_len": 16}),
], ids=["model-train_step", "train"])
def test_the_harness_skips_training_a_model_whose_mixer_is_forward_only(forward_only_model, workload, params):
    record = worker.execute(_case(workload, forward_only_model, params))
    assert record.status == "skipped", record
    assert record.reason == "mixer test_forward_only is forward-only (registered with backward=False)"


def test_the_forward_of_a_model_whose_mixer_is_forward_only_still_runs(forward_only_model):
    from harness import workloads

    case = _case("model", forward_only_model, {"direction": "fwd", "seq_len": 8, "vocab_size": 50})
    prepared = workloads.get("model").prepare(case, registry.get("model", forward_only_model))
    assert prepared.check()["within_tolerance"] == 1.0
    assert prepared.run().shape == (2, 8, 50)
