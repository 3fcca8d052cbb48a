"""The pieces the claims measure with: padded attention with dropout (FlashAttention's README
setting), the LRA-shaped encoder classifier (classify workload) with any attention and with
int8 x int8 linear layers, vLLM's serving baselines (reservations, mean batch, published
mean lengths) and speculative decoding's measured acceptance rate alpha."""
from __future__ import annotations

import math

import pytest
import torch

from harness.case import Case
from impls import registry
from impls.attention.padded import naive_padded, padded_reference, padding_lengths
from impls.decoding import generate, int8_dynamic
from impls.models import build
from impls.serving import continuous
from impls.serving.kv_store import ContiguousKV
from impls.serving.runner import AttentionRunner
from impls.serving.trace import draw_lengths, make_trace
from tests.conftest import make_case, prepare


def qkv(batch, heads, n, dim, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, n, dim, generator=gen) for _ in range(3)]


@pytest.mark.parametrize("batch,n,pad", [(1, 1, 0), (3, 37, 5), (2, 64, 20)])
def test_padded_attention_matches_its_reference_without_dropout(batch, n, pad):
    q, k, v = qkv(batch, 2, n, 16, seed=n)
    out = naive_padded(q, k, v, causal=False, pad_tokens=pad, dropout_p=0.0)
    expected = padded_reference(q.double(), k.double(), v.double(), causal=False, pad_tokens=pad)
    assert float((out.double() - expected).abs().max()) < 1e-5


def test_padding_lengths_lie_in_the_readme_range_and_padded_rows_stay_zero_under_dropout():
    lengths = padding_lengths(64, 128, 20)
    assert int(lengths.min()) >= 108 and int(lengths.max()) <= 128 and len(set(lengths.tolist())) > 5
    q, k, v = qkv(4, 2, 40, 8)
    torch.manual_seed(0)
    dropped = naive_padded(q, k, v, causal=False, pad_tokens=10, dropout_p=0.5)
    kept = naive_padded(q, k, v, causal=False, pad_tokens=10, dropout_p=0.0)
    assert not torch.allclose(dropped, kept)  # dropout does act
    for b, length in enumerate(padding_lengths(4, 40, 10).tolist()):
        assert torch.all(dropped[b, :, length:] == 0) and torch.all(kept[b, :, length:] == 0)


def classify_case(attention: str, **params) -> Case:
    fixed = {"d_model": 32, "n_layers": 1, "batch": 2, "seq_len": 100, "vocab_size": 64, "direction": "train_step",
             "precision": "fp32", **params}
    impl_params = {"attention": attention, "attention_params": params.pop("attention_params", {}), "heads": 2,
                   "mlp_dim": 64}
    fixed.pop("attention_params", None)
    return make_case("classify", "encoder", "encoder", label=attention, **fixed, **impl_params)


@pytest.mark.parametrize("attention,params", [("naive", {}), ("lra_local", {"block_size": 7}),
                                               ("local", {"window": 5}), ("linformer", {"proj_k": 8})])
def test_classifier_matches_its_attentions_reference_and_trains(attention, params):
    case = classify_case(attention, attention_params=params)
    prepared = prepare(case)
    errors = prepared.check()
    assert errors["within_tolerance"] == 1.0, errors
    prepared.run()  # one training step
    stats = prepared.stats()
    assert stats["state_bytes"] == 4 * 4 * stats["param_count"]  # fp32 weights, grads, two AdamW moments


def test_int8_dynamic_classifier_runs_int8_kernels_close_to_float():
    case = classify_case("naive", direction="fwd", weights="int8_dynamic")
    prepared = prepare(case)
    assert prepared.check()["within_tolerance"] == 1.0
    prepared.run()
    assert prepared.stats()["int8_kernel"] == torch.backends.quantized.engine
    layer = torch.nn.Sequential(torch.nn.Linear(16, 8))
    assert int8_dynamic.kernel_path(int8_dynamic.quantize(layer, "cpu")) in int8_dynamic.CPU_ENGINES
    assert int8_dynamic.kernel_path(layer) == "none"


def test_lognormal_lengths_have_the_published_mean():
    draws = draw_lengths(20000, (1, 100000), "lognormal_mean", torch.Generator().manual_seed(0), mean=161.31,
                         sigma=1.0)
    assert float(draws.float().mean()) == pytest.approx(161.31, rel=0.05)
    with pytest.raises(ValueError, match="positive mean"):
        draw_lengths(3, (1, 10), "lognormal_mean", torch.Generator())


def serve(reserve: str):
    torch.manual_seed(0)
    model = build("transformer", vocab_size=32, d_model=16, n_layers=1, max_seq_len=64).eval()
    runner = AttentionRunner(model)
    trace = make_trace(12, 1e6, prompt_len=(2, 6), output_len=(2, 10), vocab_size=32, seed=1)
    store = ContiguousKV(runner.n_layers, runner.kv_heads, runner.head_dim, max_len=16, budget_tokens=64,
                         reserve=reserve)
    return continuous.serve(runner, store, trace, max_batch=64).metrics(1e9, 1e9)


def test_reserving_each_requests_own_length_batches_more_and_wastes_less_than_max_length():
    oracle, most = serve("oracle"), serve("max")
    assert oracle["mean_batch"] > most["mean_batch"] and 1 <= most["mean_batch"] <= 4  # 64 // 16 buffers
    assert oracle["kv_waste"] < most["kv_waste"]
    with pytest.raises(ValueError, match="unknown reserve"):
        ContiguousKV(1, 1, 4, max_len=8, budget_tokens=64, reserve="pow2")


def test_speculative_alpha_is_one_with_the_target_as_its_own_draft_and_lower_with_another():
    torch.manual_seed(0)
    target = build("transformer", vocab_size=32, d_model=16, n_layers=1, max_seq_len=64).eval()
    other = build("transformer", vocab_size=32, d_model=8, n_layers=1, max_seq_len=64).eval()
    prompt = torch.randint(0, 32, (1, 5), generator=torch.Generator().manual_seed(2))
    same = generate(target, prompt, 12, "speculative", draft=target, k=3, temperature=1.0).stats.extra
    assert same["alpha"] == pytest.approx(1.0)
    mixed = generate(target, prompt, 12, "speculative", draft=other, k=3, temperature=1.0).stats.extra
    assert 0.0 < mixed["alpha"] < 1.0 and math.isfinite(mixed["alpha"])


def fake_unpadded(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, softmax_scale=None, causal=False):
    """flash-attn 1.x's flash_attn_unpadded_func written out: attention within each packed
    sequence (tokens cu[i]..cu[i+1]); q, k, v (tokens, H, D)."""
    out = torch.empty_like(q)
    for start, end in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        scores = torch.einsum("thd,shd->hts", q[start:end], k[start:end]) * (softmax_scale or q.shape[-1] ** -0.5)
        out[start:end] = torch.einsum("hts,shd->thd", scores.softmax(-1), v[start:end])
    return out


def test_flash_attn_v1_packs_each_sequence_without_its_padding(monkeypatch):
    """Without a GPU: flash-attn 1.x's interface replaced by its definition, our packing (the
    README's padded batch as varlen sequences) must equal padded_reference."""
    import sys
    import types

    interface = types.ModuleType("flash_attn.flash_attn_interface")
    interface.flash_attn_unpadded_func = fake_unpadded
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    monkeypatch.setitem(sys.modules, "flash_attn.flash_attn_interface", interface)
    q, k, v = qkv(3, 2, 29, 8, seed=5)
    out = registry.get("attention", "flash_attn_v1").fn(q, k, v, causal=False, pad_tokens=6)
    expected = padded_reference(q.double(), k.double(), v.double(), causal=False, pad_tokens=6)
    assert float((out.double() - expected).abs().max()) < 1e-5
