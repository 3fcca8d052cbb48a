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
    ("transformer", {"norm": "post"}), ("moe_transformer", {}),
    ("lstm", {}), ("gru", {}), ("rnn", {}), ("mamba", {}), ("s4d", {}),
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


@pytest.mark.parametrize("name", ["transformer", "moe_transformer", "lstm", "gru", "rnn", "mamba", "s4d"])
def test_matched_parameter_count_is_within_ten_percent(name):
    target = 400_000
    d_model, count = models.matched(name, target, family="model", vocab_size=256, n_layers=2, max_seq_len=256)
    assert abs(count - target) / target < 0.10
    built = models.build(name, "model", d_model=d_model, vocab_size=256, n_layers=2, max_seq_len=256)
    assert sum(p.numel() for p in built.parameters()) == count


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
