"""Language models and encoder-decoders: the incremental paths equal the full forward,
presets match parameter budgets, and a tiny training run learns."""
from __future__ import annotations

import pytest
import torch

from harness.quality import corpus
from harness.quality.training import Budget, train
from impls import models, registry
from impls.models.lm import LMConfig, LanguageModel

VOCAB = 40


def _incremental(model, tokens: torch.Tensor, split: int) -> torch.Tensor:
    """Logits of prefill(tokens[:, :split]) then one step per later token, (B, T, V)."""
    state = model.init_state(tokens.shape[0], tokens.shape[1])
    first, state = model.prefill(tokens[:, :split], state)
    rest = []
    for t in range(split, tokens.shape[1]):
        logits, state = model.step(tokens[:, t], state)
        rest.append(logits[:, None])
    return torch.cat([first, *rest], dim=1)


def _tiny(name: str, **params) -> LanguageModel:
    torch.manual_seed(0)
    return models.build(name, "model", vocab_size=VOCAB, d_model=32, n_layers=2, max_seq_len=64,
                        **params).double().eval()


@pytest.mark.parametrize("name, params", [
    ("transformer", {"positional": "rope"}), ("transformer", {"positional": "alibi"}),
    ("transformer", {"positional": "learned"}), ("transformer", {"positional": "sinusoidal"}),
    ("transformer", {"norm": "post"}), ("transformer", {"activation": "swiglu"}),
    ("transformer", {"attention": "chunked", "kv_heads": 2}), ("moe_transformer", {}),
    ("moe_transformer", {"top_k": 1, "capacity_factor": 4.0, "activation": "relu"}),
    ("lstm", {}), ("gru", {}), ("rnn", {}), ("lstm_cell", {}), ("gru_cell", {}), ("rnn_cell", {}),
    ("mamba", {}), ("s4d", {}),
])
def test_lm_forward_equals_prefill_equals_prefill_then_steps(name, params):
    model = _tiny(name, **params)
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)
        prefilled, _ = model.prefill(tokens, model.init_state(2, 12))
        stepped = _incremental(model, tokens, split=5)
    assert full.shape == (2, 12, VOCAB)
    torch.testing.assert_close(prefilled, full, rtol=0, atol=1e-7)
    torch.testing.assert_close(stepped, full, rtol=0, atol=1e-7)


def test_absolute_positions_change_the_logits_of_a_repeated_token():
    model = _tiny("transformer", positional="learned")
    with torch.no_grad():
        logits = model(torch.full((1, 6), 3))
    assert not torch.allclose(logits[0, 1], logits[0, 4])


def test_head_is_tied_to_the_embedding():
    model = _tiny("transformer")
    assert model.head.weight is model.embed.weight


def test_relative_positional_reaches_the_attention_mixer():
    model = _tiny("transformer", positional="alibi")
    assert all(block.mixer.positional == "alibi" for block in model.blocks)
    model = _tiny("transformer", positional="sinusoidal")  # absolute: added once, by the model
    assert all(block.mixer.positional == "none" for block in model.blocks)
    assert model.positional is not None


LM_PRESETS = ["transformer", "moe_transformer", "lstm", "gru", "rnn", "lstm_cell", "gru_cell", "rnn_cell",
              "mamba", "s4d"]


@pytest.mark.parametrize("name", LM_PRESETS)
@pytest.mark.parametrize("target", [100_000, 250_000])
def test_matched_parameter_count_is_within_five_percent(name, target):
    match = models.matched(name, target, family="model", vocab_size=256, n_layers=2, max_seq_len=256)
    assert abs(match.deviation) < 0.05
    built = models.build(match.config)
    assert sum(p.numel() for p in built.parameters()) == match.params
    assert built.config.d_model == match.d_model


@pytest.mark.parametrize("name, params", [("transformer", {"activation": "swiglu", "n_layers": 4}),
                                          ("moe_transformer", {"top_k": 1, "experts": 8}),
                                          ("transformer", {"heads": 8, "positional": "learned"})])
def test_matching_holds_for_other_params_and_tunes_the_ffn_width_when_d_model_is_too_coarse(name, params):
    params = {"vocab_size": 256, "n_layers": 2, "max_seq_len": 256, **params}
    for target in (120_000, 200_000, 400_000):
        match = models.matched(name, target, family="model", **params)
        assert abs(match.deviation) < 0.05, (target, match)
        if match.ffn_hidden is not None:
            assert models.build(match.config).blocks[0].ffn.hidden == match.ffn_hidden


@pytest.mark.parametrize("name", ["transformer", "lstm_attention"])
def test_seq2seq_presets_match_a_budget_too(name):
    for target in (150_000, 236_000):
        match = models.matched(name, target, family="seq2seq", src_vocab=13, tgt_vocab=40, n_layers=2,
                               max_seq_len=24)
        assert abs(match.deviation) < 0.05


def test_size_step_is_the_finest_d_model_the_preset_runs():
    kwargs = dict(family="model", vocab_size=64, n_layers=1, max_seq_len=32)
    assert models.size_step("lstm", **kwargs) == 1
    assert models.size_step("transformer", **kwargs) == 8  # 4 heads of an even (RoPE) size
    assert models.size_step("transformer", positional="learned", **kwargs) == 4
    assert models.size_step("transformer", heads=8, **kwargs) == 16
    with pytest.raises(ValueError, match="even size"):
        models.build("transformer", "model", d_model=36, vocab_size=64)


def test_transformer_runs_the_attention_impl_it_is_given():
    model = models.build("transformer", "model", d_model=32, vocab_size=VOCAB, attention="chunked",
                         attention_params={"block_size": 8})
    mixer = model.blocks[0].mixer
    assert mixer.attention_fn is registry.get("attention", "chunked").fn
    assert mixer.attention_params == {"block_size": 8}
    with pytest.raises(registry.UnknownImpl, match="chunked"):
        models.build("transformer", "model", d_model=32, vocab_size=VOCAB, attention="chunkd")


@pytest.mark.parametrize("preset, mixer", [("lstm", "lstm_torch"), ("lstm_cell", "lstm"), ("gru", "gru_torch"),
                                           ("gru_cell", "gru"), ("rnn", "rnn_torch"), ("rnn_cell", "rnn")])
def test_recurrent_presets_run_the_fused_layer_or_our_cell(preset, mixer):
    model = models.build(preset, "model", d_model=16, vocab_size=VOCAB, n_layers=1)
    assert isinstance(model.blocks[0].mixer, registry.get("mixer", mixer).fn)


@pytest.mark.parametrize("activation", ["relu", "swiglu"])
def test_activation_reaches_the_mlp_and_every_expert(activation):
    dense = models.build("transformer", "model", d_model=16, vocab_size=VOCAB, activation=activation)
    moe = models.build("moe_transformer", "model", d_model=16, vocab_size=VOCAB, activation=activation, top_k=1)
    assert dense.blocks[0].ffn.activation == moe.blocks[0].ffn.activation == activation
    assert moe.blocks[0].ffn.top_k == 1


def test_build_accepts_a_config_with_overrides():
    config = LMConfig(vocab_size=VOCAB, d_model=32, n_layers=1, mixer="lstm_torch", positional="none")
    model = models.build(config, n_layers=3)
    assert isinstance(model, LanguageModel) and len(model.blocks) == 3


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(registry.UnknownImpl, match="transformer"):
        models.build("transformr")


@pytest.mark.parametrize("name", ["transformer", "lstm_attention"])
def test_seq2seq_decode_step_with_cached_encoder_equals_forward(name):
    torch.manual_seed(0)
    model = models.build(name, "seq2seq", src_vocab=11, tgt_vocab=VOCAB, d_model=32, n_layers=2).double().eval()
    gen = torch.Generator().manual_seed(2)
    src, tgt = torch.randint(0, 11, (3, 6), generator=gen), torch.randint(0, VOCAB, (3, 7), generator=gen)
    with torch.no_grad():
        full = model(src, tgt)
        memory = model.encode(src)  # encoded once, reused by every step
        state = model.init_state(3, 7)
        steps = []
        for t in range(7):
            logits, state = model.decode_step(tgt[:, t], memory, state)
            steps.append(logits)
    assert full.shape == (3, 7, VOCAB)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=0, atol=1e-7)


def test_seq2seq_output_depends_on_the_source():
    torch.manual_seed(0)
    model = models.build("transformer", "seq2seq", src_vocab=11, tgt_vocab=VOCAB, d_model=32, n_layers=1).eval()
    tgt = torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        a, b = model(torch.tensor([[1, 2, 3]]), tgt), model(torch.tensor([[4, 5, 6]]), tgt)
    assert not torch.allclose(a, b)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train_tiny(seed: int) -> list[float]:
    text = corpus.load(max_chars=20_000)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = models.build("transformer", "model", vocab_size=text.vocab_size, d_model=16, n_layers=1,
                         max_seq_len=16)
    log = train(model, lambda step: (*corpus.random_windows(text.train, 8, 16, gen), None),
                Budget(steps=25, lr=2e-2, warmup_steps=2, record_every=4))
    return log.losses


@pytest.mark.slow  # the first optimizer step imports torch._dynamo (~5 s on a loaded machine)
def test_tiny_training_run_reduces_loss_and_repeats_under_a_seed(one_thread):
    losses = _train_tiny(0)
    assert losses[-1] < 0.8 * losses[0]
    assert _train_tiny(0) == losses
