"""Attention mixer: KV cache kinds, positional variants, GQA, window semantics."""
from __future__ import annotations

import pytest
import torch

from impls import registry
from impls.attention.reference import attention_fp64
from impls.mixers.state import state_bytes

D, T = 16, 12


def build(seed: int = 0, **params):
    torch.manual_seed(seed)
    return registry.get("mixer", "attention").fn(D, **{"heads": 4, "attention": "naive", **params}).eval()


def inputs(t: int = T, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, t, D, generator=torch.Generator().manual_seed(seed))


def steps(mixer, x, **cache):
    state = mixer.init_state(x.shape[0], x.shape[1], **cache)
    ys, sizes = [], []
    for t in range(x.shape[1]):
        y, state = mixer.step(x[:, t], state)
        ys.append(y)
        sizes.append(state_bytes(state))
    return torch.stack(ys, 1), sizes


@pytest.mark.parametrize("positional", ["none", "sinusoidal", "learned", "rope", "alibi"])
@pytest.mark.parametrize("cache", ["grow", "static"])
def test_every_positional_and_cache_kind_matches_forward(positional, cache):
    mixer, x = build(positional=positional, kv_heads=2, max_len=32), inputs()
    with torch.no_grad():
        y = mixer(x)
        state = mixer.init_state(2, 32, cache=cache)
        first, state = mixer.prefill(x[:, :7], state)
        rest, _ = steps_from(mixer, x[:, 7:], state)
    torch.testing.assert_close(torch.cat((first, rest), 1), y, atol=1e-5, rtol=1e-4)


def steps_from(mixer, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = mixer.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize("impl", ["naive", "sdpa_math", "reference"])
def test_any_exact_attention_impl_gives_the_same_block_output(impl):
    x = inputs()
    with torch.no_grad():
        expected = build(attention="naive")(x)
        mixer = build(attention=impl)
        torch.testing.assert_close(mixer(x), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(steps(mixer, x)[0], expected, atol=1e-5, rtol=1e-4)


def test_block_equals_fp64_attention_written_out():
    """Projections + RoPE + GQA + out projection, recomputed by hand in float64."""
    mixer, x = build(kv_heads=2, positional="rope"), inputs()
    positions = torch.arange(T)
    from impls.positional.rope import apply_rope
    wq, wk, wv = mixer.qkv_proj.weight.split([16, 8, 8])  # [q | k | v]: 4 query heads, 2 kv heads of 4
    q = (x @ wq.T).view(2, T, 4, 4).transpose(1, 2)
    k, v = ((x @ w.T).view(2, T, 2, 4).transpose(1, 2) for w in (wk, wv))
    o = attention_fp64(apply_rope(q, positions), apply_rope(k, positions), v, causal=True)
    expected = o.transpose(1, 2).reshape(2, T, D) @ mixer.out_proj.weight.double().T
    with torch.no_grad():
        torch.testing.assert_close(mixer(x).double(), expected, atol=1e-5, rtol=1e-4)


def test_alibi_block_equals_biased_softmax_written_out():
    """softmax(q k^T / sqrt(d) - slope_h * (i - j)) v over j <= i, by hand in float64."""
    mixer, x = build(positional="alibi"), inputs()
    q, k, v = ((x.double() @ w.double().T).view(2, T, 4, 4).transpose(1, 2)
               for w in mixer.qkv_proj.weight.split(16))  # [q | k | v], 4 heads of 4 each
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    slopes = torch.tensor([2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8], dtype=torch.float64)
    scores = q @ k.transpose(-1, -2) / 2.0 - slopes[:, None, None] * (i - j)
    probs = scores.masked_fill(j > i, float("-inf")).softmax(-1)
    expected = (probs @ v).transpose(1, 2).reshape(2, T, D) @ mixer.out_proj.weight.double().T
    with torch.no_grad():
        torch.testing.assert_close(mixer(x).double(), expected, atol=1e-5, rtol=1e-4)


def test_growing_cache_grows_static_is_constant_window_is_bounded():
    mixer, x = build(kv_heads=2), inputs()
    per_token = 2 * 2 * 2 * 4 * 4  # k and v, batch 2, 2 kv heads, head_dim 4, fp32
    with torch.no_grad():
        _, grow = steps(mixer, x)
        _, static = steps(mixer, x, cache="static")
        _, window = steps(mixer, x, cache="window", window=5)
    assert grow == [per_token * (t + 1) for t in range(T)]
    assert static == [per_token * T + 8] * T  # the whole buffer from the start, and its int64 position
    assert window == [per_token * min(t + 1, 5) for t in range(T)]


def test_window_cache_equals_full_attention_over_the_last_window_tokens():
    """With a relative positional encoding, sliding-window output at t equals the
    block run on just tokens t - window .. t."""
    window = 4
    mixer, x = build(positional="rope"), inputs()
    with torch.no_grad():
        y, _ = steps(mixer, x, cache="window", window=window)
        for t in range(T):
            alone = mixer(x[:, max(0, t - window): t + 1])[:, -1]
            torch.testing.assert_close(y[:, t], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("positional", ["rope", "alibi"])
def test_window_cache_chunked_prefill_equals_steps(positional):
    """A multi-token prefill into a window cache needs the banded mask path."""
    mixer, x = build(positional=positional), inputs()
    with torch.no_grad():
        y_steps, _ = steps(mixer, x, cache="window", window=3)
        state = mixer.init_state(2, T, cache="window", window=3)
        parts = []
        for lo, hi in ((0, 2), (2, 9), (9, T)):
            part, state = mixer.prefill(x[:, lo:hi], state)
            parts.append(part)
    torch.testing.assert_close(torch.cat(parts, 1), y_steps, atol=1e-5, rtol=1e-4)


def test_static_cache_refuses_to_overflow_and_bad_cache_kind_is_named():
    mixer = build()
    state = mixer.init_state(2, 4, cache="static")
    with pytest.raises(ValueError, match="static KV cache holds 4"):
        mixer.prefill(inputs(5), state)
    with pytest.raises(ValueError, match="grow"):
        mixer.init_state(2, 4, cache="paged")


# Small params for every registered attention impl, so that each sparse pattern leaves keys out
# at T = 12; a new attention impl with params must be added here to be tested as a mixer.
IMPL_PARAMS = {
    "local": {"window": 3}, "local_reference": {"window": 3},
    "flex_window": {"window": 3}, "flex_window_reference": {"window": 3},
    "longformer": {"window": 3, "global_tokens": 2}, "longformer_reference": {"window": 3, "global_tokens": 2},
    "bigbird": {"block_size": 2, "window_blocks": 2, "global_blocks": 1, "num_random_blocks": 1},
    "bigbird_reference": {"block_size": 2, "window_blocks": 2, "global_blocks": 1, "num_random_blocks": 1},
    "sparse_strided": {"stride": 3}, "sparse_strided_reference": {"stride": 3},
    "linformer": {"proj_k": 4}, "linformer_reference": {"proj_k": 4},
    "chunked": {"block_size": 5},
    "lra_local": {"block_size": 3}, "lra_local_reference": {"block_size": 3},
    "naive_padded": {"pad_tokens": 2, "dropout_p": 0.0}, "padded_reference": {"pad_tokens": 2},
    "flash_attn_v1": {"pad_tokens": 0, "dropout_p": 0.0},
}
# linformer has no causal form, LRA's local attention is an encoder's, and the padded
# benchmark's lengths belong to a batch of whole sequences, not to a decoder's steps
NO_CAUSAL_FORM = {"linformer", "linformer_reference", "lra_local", "lra_local_reference", "naive_padded",
                  "padded_reference"}
PATTERNED = {"local", "local_reference", "flex_window", "flex_window_reference", "longformer",
             "longformer_reference", "bigbird", "bigbird_reference", "sparse_strided", "sparse_strided_reference"}


def build_over(impl: str, **params):
    spec = registry.get("attention", impl)
    if not any(registry.available(spec, "cpu", precision)[0] for precision in spec.precisions):
        pytest.skip(f"{impl} does not run on this CPU")
    return build(attention=impl, attention_params=IMPL_PARAMS.get(impl, {}), **params)


def test_every_attention_impl_with_params_has_small_params():
    with_params = {name for name in registry.names("attention") if registry.get("attention", name).params}
    assert with_params <= set(IMPL_PARAMS), "add the new impl to IMPL_PARAMS"


# eager flex on a CPU builds a block mask and runs unfused for every new cache length (~5 s)
SLOW_TO_STEP = {"flex", "flex_window"}
CAUSAL_IMPLS = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_TO_STEP else name
                for name in sorted(set(registry.names("attention")) - NO_CAUSAL_FORM)]


@pytest.mark.parametrize("impl", CAUSAL_IMPLS)
def test_every_causal_attention_impl_decodes_as_its_own_forward(impl):
    """Cached steps and chunked prefills of a mixer over `impl` give the impl's full-sequence
    output at every row: a sparse pattern's rows for later queries over cached keys."""
    mixer, x = build_over(impl, kv_heads=2), inputs()
    with torch.no_grad():
        y = mixer(x)
        state, parts = mixer.init_state(2, T), []
        for lo, hi in ((0, 5), (5, 6), (6, T)):
            part, state = mixer.prefill(x[:, lo:hi], state)
            parts.append(part)
        y_steps, _ = steps(mixer, x)
        dense = build(attention="naive", kv_heads=2)(x)
    # int8 rounds each q and k row to its grid: a row projected alone may land one step away
    tol = dict(atol=1e-3, rtol=1e-2) if impl.startswith("int8") else dict(atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(parts, 1), y, **tol)
    torch.testing.assert_close(y_steps, y, **tol)
    if impl in PATTERNED:  # the pattern leaves keys out, so rows equal to dense ones would not do
        assert not torch.allclose(y, dense, atol=1e-4)


def test_a_window_cache_bands_a_sparse_pattern_in_chunked_prefill_as_in_steps():
    mixer, x = build_over("longformer", positional="rope"), inputs()
    with torch.no_grad():
        y_steps, _ = steps(mixer, x, cache="window", window=4)
        state, parts = mixer.init_state(2, T, cache="window", window=4), []
        for lo, hi in ((0, 7), (7, T)):
            part, state = mixer.prefill(x[:, lo:hi], state)
            parts.append(part)
    torch.testing.assert_close(torch.cat(parts, 1), y_steps, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("impl", sorted(NO_CAUSAL_FORM))
def test_an_impl_without_causal_form_is_refused_as_a_decoder_mixer(impl):
    from impls.errors import Unsupported

    with pytest.raises(Unsupported, match=f"attention impl '{impl}' cannot be a causal .*no causal form"):
        build(attention=impl, attention_params=IMPL_PARAMS[impl])


@pytest.mark.parametrize("impl", ["naive", "reference", "sdpa_math", "sdpa_efficient"])
def test_alibi_runs_on_every_impl_that_takes_a_bias_with_the_same_output(impl):
    mixer, x = build_over(impl, positional="alibi", kv_heads=2), inputs()
    with torch.no_grad():
        expected = build(attention="naive", positional="alibi", kv_heads=2)(x)
        torch.testing.assert_close(mixer(x), expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(steps(mixer, x)[0], expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("impl", ["chunked", "local", "flex"])
def test_alibi_on_an_impl_without_bias_is_refused_not_substituted(impl):
    from impls.errors import Unsupported

    with pytest.raises(Unsupported, match=f"'{impl}' takes no score bias.*naive, reference, sdpa_math"):
        build(attention=impl, positional="alibi", attention_params=IMPL_PARAMS.get(impl, {}))


@pytest.mark.parametrize("params, reason", [
    ({"attention": "linformer"}, "'linformer' cannot be a causal (decoder) mixer: linformer has no causal form"),
    ({"attention": "chunked", "positional": "alibi"}, "'chunked' takes no score bias, so it cannot run ALiBi"),
])
def test_a_refused_attention_impl_is_a_skipped_model_case_with_its_reason(params, reason):
    from harness.regression import build_case
    from harness.worker import execute

    record = execute(build_case("model", "transformer", "model", d_model=16, seq_len=8, batch=1, **params))
    assert record.status == "skipped" and reason in record.reason
