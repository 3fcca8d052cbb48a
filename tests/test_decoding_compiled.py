"""The compiled one-token step: one graph, without breaks, for every position of a static
cache, and the same tokens and logits as the eager step; and the pieces of the fast path
(the head on the last prompt position, the single query without a mask).

The graphs here are traced by dynamo and run by a counting backend (no inductor code is
generated, which takes tens of seconds a model on a small CPU): what is checked is what the
decode step becomes under torch.compile. Inductor itself runs in the benchmark set's
compiled decode case (tests/benchmarks/cases.yaml), whose check compares its logits with
the full forward pass."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

from impls.decoding import compiled, generate
from impls.decoding.session import Session
from impls.models.lm import LanguageModel, LMConfig

VOCAB = 32
# (mixer, its params, the model's positions): RoPE, learned (GPT-2), GQA, and a recurrent
# mixer whose step traces whole (torch's own RNN modules do not: rnn_torch)
MODELS = {
    "attention-rope": ("attention", {"attention": "sdpa"}, "rope"),
    "attention-learned": ("attention", {"attention": "sdpa_math"}, "learned"),
    "attention-gqa": ("attention", {"attention": "naive", "heads": 4, "kv_heads": 2}, "rope"),
    "mamba": ("mamba", {}, "none"),
}


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture
def counter(monkeypatch) -> CompileCounter:
    """Every compiled step traced whole (fullgraph) and counted, run by dynamo's eager backend."""
    count = CompileCounter()
    torch._dynamo.reset()
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", compiled.RECOMPILE_LIMIT)
    monkeypatch.setattr(compiled, "_compiled", lambda device_type: torch.compile(
        compiled.decode_one_token, backend=count, fullgraph=True, dynamic=False))
    yield count
    torch._dynamo.reset()


def tiny_lm(name: str, seed: int = 0) -> LanguageModel:
    mixer, params, positional = MODELS[name]
    torch.manual_seed(seed)
    config = LMConfig(VOCAB, 32, 2, mixer=mixer, mixer_params=params, positional=positional, max_seq_len=64)
    model = LanguageModel(config).eval()
    for p in model.parameters():  # sharper than the 0.02 init, so greedy paths are not ties
        p.data.normal_(0, 0.3)
    return model


def prompt(batch: int = 2, length: int = 6) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", MODELS)
def test_compiled_step_is_one_graph_for_every_position_with_eager_tokens(counter, name):
    model = tiny_lm(name)
    eager = generate(model, prompt(), 12).tokens
    assert torch.equal(generate(model, prompt(), 12, compile=True).tokens, eager)
    # 11 steps at 11 positions: one graph, or two where the state a prefill leaves has other
    # strides than a step's (mamba's scan), never one per position
    assert counter.frame_count == (2 if name == "mamba" else 1)


@pytest.mark.parametrize("name", ["attention-rope", "mamba"])
def test_compiled_steps_give_the_logits_of_the_full_forward(counter, name):
    model, tokens = tiny_lm(name), prompt(2, 14)
    session = Session(model, 2, 14, "static", compile=True)
    logits = [session.prefill(tokens[:, :5])] + [session.step(tokens[:, t])[:, None] for t in range(5, 14)]
    torch.testing.assert_close(torch.cat(logits, 1), model(tokens), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("strategy", ["beam", "speculative"])
def test_compiled_beam_and_speculative_equal_their_eager_tokens(counter, strategy):
    model, draft = tiny_lm("attention-rope"), tiny_lm("attention-learned", seed=3)
    options = {"width": 3} if strategy == "beam" else {"draft": draft, "k": 2}
    eager = generate(model, prompt(), 6, strategy, **options).tokens
    assert torch.equal(generate(model, prompt(), 6, strategy, compile=True, **options).tokens, eager)
    # beam steps the batch of beams; speculative steps the draft (the target verifies by prefill),
    # also after each rollback: one graph either way
    assert counter.frame_count == 1


def test_alibi_steps_compiled_keep_their_own_rows(monkeypatch):
    """ALiBi reads the cache length back (a graph break), so it compiles in pieces."""
    count = CompileCounter()
    torch._dynamo.reset()
    monkeypatch.setattr(compiled, "_compiled", lambda device_type: torch.compile(
        compiled.decode_one_token, backend=count, dynamic=False))
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(VOCAB, 32, 2, mixer_params={"attention": "naive"}, positional="alibi")).eval()
    assert torch.equal(generate(model, prompt(), 8, compile=True).tokens, generate(model, prompt(), 8).tokens)
    torch._dynamo.reset()


def test_a_one_row_matmul_over_a_linear_weight_becomes_a_multiply_and_sum():
    """The decomposition the CPU backend gives inductor: exact up to summation order, and only
    for one row over an nn.Linear weight (a batch, or a weight stored (in, out), keeps torch's mm)."""
    gen = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(1, 48, generator=gen), torch.randn(40, 48, generator=gen), torch.randn(40)
    torch.testing.assert_close(compiled._one_row_mm(x, weight.T), x @ weight.T)
    torch.testing.assert_close(compiled._one_row_addmm(bias, x, weight.T), torch.addmm(bias, x, weight.T))
    assert compiled._one_row_mm(torch.randn(2, 48), weight.T) is NotImplemented
    assert compiled._one_row_mm(x, weight.T.contiguous()) is NotImplemented


def test_compile_asks_for_a_static_cache():
    with pytest.raises(ValueError, match="compile=True needs cache='static'"):
        generate(tiny_lm("attention-rope"), prompt(), 4, cache="grow", compile=True)


@pytest.mark.parametrize("name", ["attention-learned", "mamba"])
def test_prefill_of_the_last_positions_equals_the_full_prefill_there(name):
    model, tokens = tiny_lm(name), prompt(2, 7)
    full, _ = model.prefill(tokens, model.init_state(2, 7, cache="static"))
    last, state = model.prefill(tokens, model.init_state(2, 7, cache="static"), last=1)
    assert last.shape == (2, 1, VOCAB)
    torch.testing.assert_close(last, full[:, -1:])
    assert int(state.position) == 7


@pytest.mark.parametrize("impl", ["sdpa", "sdpa_math", "naive", "chunked"])
def test_a_single_query_attends_to_every_cached_key_without_a_mask(impl):
    """The newest position is called non-causal (no mask to build), and gives the causal rows."""
    torch.manual_seed(0)
    model, tokens = LanguageModel(LMConfig(VOCAB, 32, 2, mixer_params={"attention": impl})).eval(), prompt(2, 9)
    mixer, calls = model.blocks[0].mixer, []
    attend = mixer.attention_fn

    def recording(q, k, v, *, causal, **params):
        calls.append(causal)
        return attend(q, k, v, causal=causal, **params)

    mixer.attention_fn = recording
    session = Session(model, 2, 9, "static")
    logits = [session.prefill(tokens[:, :4])] + [session.step(tokens[:, t])[:, None] for t in range(4, 9)]
    assert calls == [True] + [False] * 5  # the prompt causal, then every step without a mask
    torch.testing.assert_close(torch.cat(logits, 1), model(tokens), atol=1e-4, rtol=1e-4)
