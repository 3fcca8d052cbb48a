"""The encoder-decoder Transformer's positions and attention impl: every positional
encoding (RoPE and ALiBi inside self-attention), config.attention in every attention
layer, and impls that cannot fill a role refused as `skipped`."""
from __future__ import annotations

import pytest
import torch

from impls import models, registry
from impls.errors import Unsupported


def build(seed: int = 0, **params):
    torch.manual_seed(seed)
    model = models.build("transformer", "seq2seq", src_vocab=12, tgt_vocab=20, d_model=32, n_layers=2,
                         max_seq_len=32, **params)
    for p in model.parameters():  # large weights, so positions visibly move the logits
        p.data.normal_(0, 0.3)
    return model.eval()


def tokens(vocab: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (2, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention", ["sdpa_math", "naive"])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "rope", "alibi"])
@torch.no_grad()
def test_cached_decoding_equals_the_teacher_forced_forward(positional, attention):
    model, src, tgt = build(positional=positional, attention=attention), tokens(12, 7, 1), tokens(20, 9, 2)
    full = model(src, tgt)
    memory, state, logits = model.encode(src), model.init_state(2, 9), []
    for t in range(9):
        step, state = model.decode_step(tgt[:, t], memory, state)
        logits.append(step)
    torch.testing.assert_close(torch.stack(logits, 1), full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("positional", ["rope", "alibi"])
@torch.no_grad()
def test_relative_positions_make_the_encoder_see_order_without_a_table(positional):
    """No absolute table is added, yet reordering the source does not just reorder the encoding
    (attention without positions is permutation-equivariant)."""
    model, src = build(positional=positional), tokens(12, 7, 3)
    assert model.positional is None
    order = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    encoded, reordered = model.encode(src).output, model.encode(src[:, order]).output
    assert not torch.allclose(reordered, encoded[:, order], atol=1e-4)
    plain = build(positional="rope")
    for layer in plain.encoder:
        layer.attn.positional = "none"
    torch.testing.assert_close(plain.encode(src[:, order]).output, plain.encode(src).output[:, order],
                               atol=1e-5, rtol=1e-4)


def test_every_attention_layer_runs_config_attention():
    model = build(attention="chunked")
    chunked = registry.get("attention", "chunked").fn
    assert all(layer.attn.fn is chunked for layer in model.encoder)
    assert all(layer.self_attn.attention_fn is chunked and layer.cross.fn is chunked for layer in model.decoder)


@pytest.mark.parametrize("attention, role", [("linformer", "causal"), ("local", "cross-attention")])
def test_an_impl_that_cannot_fill_a_role_is_refused_naming_it(attention, role):
    with pytest.raises(Unsupported, match=f"'{attention}' cannot be .*{role}"):
        build(attention=attention)


def test_alibi_with_an_impl_without_bias_is_refused():
    with pytest.raises(Unsupported, match="'chunked' takes no score bias"):
        build(attention="chunked", positional="alibi")


def test_a_refused_impl_is_a_skipped_case_with_its_reason():
    from harness.regression import build_case
    from harness.worker import execute

    case = build_case("seq2seq", "transformer", "generate", attention="linformer", d_model=16, src_len=4,
                      new_tokens=2)
    record = execute(case)
    assert record.status == "skipped"
    assert "linformer" in record.reason and "no causal form" in record.reason
