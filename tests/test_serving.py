"""Serving: traces, paged vs contiguous KV storage, and every policy returning
exactly what decoding each request alone returns."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from impls.decoding import generate
from impls.models.lm import LanguageModel, LMConfig
from impls.serving import continuous, engine, static
from impls.serving.kv_store import ContiguousKV
from impls.serving.paged import PagedKVCache
from impls.serving.paged_attention import gathered_attention, paged_attention
from impls.serving.runner import AttentionRunner
from impls.serving.state_runner import StateRunner, StateStore
from impls.serving.trace import Request, arrival_gaps, draw_lengths, make_trace

VOCAB = 32


@pytest.fixture(scope="module")
def model() -> LanguageModel:
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(VOCAB, 32, 2, mixer="attention", mixer_params={"heads": 4, "kv_heads": 2},
                                ffn="none", max_seq_len=128)).eval()
    for p in lm.parameters():
        p.data.normal_(0, 0.4)
    return lm


STEP_S = 1e-3  # what every model call costs on the test clock


@pytest.fixture
def steady_clock(monkeypatch):
    """Each model call advances the serving clock by STEP_S, whatever it took: which requests
    share a batch then depends on the trace alone, never on how loaded the machine is."""

    def run(clock, fn):
        out = fn()
        clock.now += STEP_S
        clock.busy += STEP_S
        return out

    monkeypatch.setattr(engine.Clock, "run", run)


def stores(model, budget_tokens=512, max_len=48, block_size=4):
    runner = AttentionRunner(model)
    dims = (runner.n_layers, runner.kv_heads, runner.head_dim)
    return runner, {"contiguous": ContiguousKV(*dims, max_len=max_len, budget_tokens=budget_tokens),
                    "paged": PagedKVCache(*dims, budget_tokens=budget_tokens, block_size=block_size)}


def alone(model, request) -> list[int]:
    with torch.no_grad():
        return generate(model, request.prompt[None], request.output_len).tokens[0].tolist()


def test_trace_is_seeded_and_has_the_requested_rate():
    a, b = make_trace(50, 4.0, seed=3), make_trace(50, 4.0, seed=3)
    assert [r.arrival_s for r in a] == [r.arrival_s for r in b]
    assert all(torch.equal(x.prompt, y.prompt) for x, y in zip(a, b))
    g = torch.Generator().manual_seed(0)
    poisson = arrival_gaps(20000, 5.0, "poisson", 1.0, g)
    bursty = arrival_gaps(20000, 5.0, "gamma", 3.0, g)
    assert abs(poisson.mean() - 0.2) < 0.01 and abs(bursty.mean() - 0.2) < 0.02
    assert abs(poisson.std() / poisson.mean() - 1.0) < 0.05
    assert abs(bursty.std() / bursty.mean() - 3.0) < 0.3  # burstiness is the gaps' coefficient of variation


def test_trace_lengths_follow_the_chosen_distribution_within_bounds():
    g = torch.Generator().manual_seed(0)
    fixed, uniform, heavy = (draw_lengths(20000, (8, 512), kind, g).double() for kind in ("fixed", "uniform", "lognormal"))
    assert (fixed == 512).all()
    assert uniform.min() == 8 and uniform.max() == 512 and abs(uniform.mean() - 260) < 5
    assert heavy.min() >= 8 and heavy.max() <= 512
    assert abs(heavy.median() - 64) <= 3  # median at the geometric mean of the bounds
    assert heavy.mean() > 1.3 * heavy.median()  # the right tail: a few long requests pull the mean up
    assert 0.005 < float((heavy == 512).double().mean()) < 0.02  # the max is the 99th percentile
    a, b = (make_trace(30, 5.0, length_dist="lognormal", seed=2) for _ in range(2))
    assert [(len(r.prompt), r.output_len) for r in a] == [(len(r.prompt), r.output_len) for r in b]
    with pytest.raises(ValueError, match="valid: fixed, uniform, lognormal"):
        make_trace(3, 5.0, length_dist="zipf")


def test_paged_store_holds_and_attends_like_contiguous_across_block_boundaries(model):
    runner, kv = stores(model, block_size=4)
    g = torch.Generator().manual_seed(1)
    lengths = {0: 3, 1: 4, 2: 9, 3: 1}  # inside, exactly at, and across block boundaries
    for s, n in lengths.items():
        for store in kv.values():
            store.add(s, n + 2)
        for start in range(0, n, 3):  # written in chunks, like a prefill then steps
            t = min(3, n - start)
            k, v = torch.randn(2, runner.kv_heads, t, runner.head_dim, generator=g)
            for store in kv.values():
                store.write(1, s, start, k, v)
    seqs = list(lengths)
    for s, n in lengths.items():
        ref_k, ref_v = kv["paged"].gather_reference(1, s)
        torch.testing.assert_close(ref_k, kv["contiguous"].buffers[s][1, 0, :, :n], rtol=0, atol=0)
        torch.testing.assert_close(ref_v, kv["contiguous"].buffers[s][1, 1, :, :n], rtol=0, atol=0)
    assert [len(kv["paged"].tables[s]) for s in seqs] == [1, 1, 3, 1]
    # each sequence's last two positions as queries (one attends to a single key)
    positions = torch.tensor([[max(n - 2, 0), n - 1] for n in lengths.values()])
    q = torch.randn(len(seqs), 4, 2, runner.head_dim, generator=g)
    paged, contiguous = (store.attend(1, seqs, q, positions) for store in (kv["paged"], kv["contiguous"]))
    torch.testing.assert_close(paged, contiguous, atol=1e-5, rtol=1e-5)


def test_paged_cache_frees_blocks_and_reuses_them(model):
    runner, kv = stores(model, budget_tokens=16, block_size=4)
    paged = kv["paged"]
    assert paged.num_blocks == 4
    paged.add(0, 10)  # promises 3 blocks
    assert paged.can_admit(4) and not paged.can_admit(5)
    k = torch.randn(runner.kv_heads, 10, runner.head_dim)
    paged.write(0, 0, 0, k, k)
    assert len(paged.free) == 1 and paged.reserved_bytes() == 12 * paged.token_bytes
    assert paged.used_bytes() == 10 * paged.token_bytes
    paged.release(0)
    assert sorted(paged.free) == [0, 1, 2, 3] and paged.can_admit(16)
    paged.add(1, 16)
    paged.write(0, 1, 0, torch.randn(runner.kv_heads, 16, runner.head_dim), torch.randn(runner.kv_heads, 16, runner.head_dim))
    with pytest.raises(MemoryError):
        paged.add(2, 1)


def test_runner_prefill_and_decode_match_the_model(model):
    runner, kv = stores(model)
    store = kv["paged"]
    tokens = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(tokens)
    for s in range(2):
        store.add(s, 9)
        torch.testing.assert_close(runner.prefill(store, s, tokens[s, :5 + s]), full[s, :5 + s], atol=1e-4, rtol=1e-4)
    # the two sequences are at different lengths (5 and 6) and decode together
    logits = runner.decode(store, [0, 1], torch.tensor([tokens[0, 5], tokens[1, 6]]))
    torch.testing.assert_close(logits, torch.stack([full[0, 5], full[1, 6]]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("policy,store_kind", [("continuous", "paged"), ("continuous", "contiguous"),
                                               ("static", "contiguous")])
def test_every_policy_returns_what_decoding_each_request_alone_returns(model, policy, store_kind, steady_clock):
    trace = make_trace(7, rate=200.0, prompt_len=(2, 12), output_len=(1, 9), vocab_size=VOCAB, seed=4)
    runner, kv = stores(model, budget_tokens=96, max_len=24, block_size=4)  # room for 4 contiguous sequences
    serve = continuous.serve if policy == "continuous" else static.serve
    result = serve(runner, kv[store_kind], trace, max_batch=3)
    for request in trace:
        got = result.results[request.id]
        assert got.tokens == alone(model, request), request.id
        assert got.ttft_s >= 0 and len(got.token_times_s) == request.output_len
    assert kv[store_kind].reserved_bytes() == 0  # everything released at the end
    metrics = result.metrics(ttft_target_s=float("inf"), itl_target_s=float("inf"))
    assert metrics["slo_attained"] == 1.0 and 0 <= metrics["kv_waste"] < 1
    assert result.metrics(ttft_target_s=0.0, itl_target_s=float("inf"))["goodput_requests_per_s"] == 0
    assert metrics["ttft_p50_ms"] <= metrics["ttft_p99_ms"]


@pytest.mark.parametrize("mixer", ["gru_torch", "mamba"])
def test_recurrent_models_batch_by_stacking_states_and_match_decoding_alone(mixer, steady_clock):
    torch.manual_seed(0)
    lm = LanguageModel(LMConfig(VOCAB, 16, 1, mixer=mixer, ffn="none", positional="none")).eval()
    for p in lm.parameters():
        p.data.normal_(0, 0.4)
    trace = make_trace(5, rate=300.0, prompt_len=(2, 8), output_len=(2, 6), vocab_size=VOCAB, seed=6)
    result = continuous.serve(StateRunner(lm), StateStore(max_seqs=3), trace, max_batch=3)
    assert result.peak_batch == 3  # requests 2-4 arrive 4 ms apart (4 model calls) and share a batch
    for request in trace:
        assert result.results[request.id].tokens == alone(lm, request)


def test_paged_wastes_less_kv_memory_than_contiguous(model, steady_clock):
    trace = make_trace(6, rate=500.0, prompt_len=(2, 6), output_len=(2, 4), vocab_size=VOCAB, seed=5)
    runner, kv = stores(model, budget_tokens=256, max_len=32, block_size=4)
    kv["paged"].contiguous_max_len = 32
    metrics = {kind: continuous.serve(runner, store, trace, max_batch=6).metrics(1, 1) for kind, store in kv.items()}
    assert metrics["paged"]["kv_waste"] < 0.5 < metrics["contiguous"]["kv_waste"]
    # the same sequences in max_len buffers would have held more than the blocks did
    assert metrics["paged"]["kv_peak_contiguous_equiv_bytes"] > metrics["paged"]["kv_peak_reserved_bytes"]


@pytest.mark.parametrize("heads,kv_heads,block,T", [(4, 2, 4, 1), (2, 2, 3, 5), (4, 1, 8, 2)])
def test_blockwise_paged_attention_equals_gathering_every_block(heads, kv_heads, block, T):
    g = torch.Generator().manual_seed(heads * block + T)
    D, n_blocks, lengths = 8, 16, [1, block, block + 1, 3 * block]  # one key, a full block, one past, three blocks
    k_pool, v_pool = torch.randn(2, n_blocks, kv_heads, block, D, generator=g)
    nb = max(math.ceil(n / block) for n in lengths)
    tables = torch.randperm(n_blocks, generator=g)[:len(lengths) * nb].view(len(lengths), nb)  # scattered blocks
    # the last T positions of each sequence (clamped at 0: a one-token sequence repeats its query)
    positions = torch.tensor([[max(n - T + t, 0) for t in range(T)] for n in lengths])
    q = torch.randn(len(lengths), heads, T, D, generator=g)
    expected = gathered_attention(q, k_pool, v_pool, tables, positions)
    torch.testing.assert_close(paged_attention(q, k_pool, v_pool, tables, positions), expected, atol=1e-5, rtol=1e-5)


class LargestNewTensor(TorchDispatchMode):
    """Most elements of any tensor an op allocates; views of existing storage (a slice of
    the KV pool) are not allocations and do not count."""

    def __init__(self):
        super().__init__()
        self.most = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in pytree.tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.most = max(self.most, t.numel())
        return out


def _largest_decode_tensor(model, store, length: int) -> int:
    """Largest tensor one decode step of two sequences at `length` allocates."""
    runner = AttentionRunner(model)
    prompts = torch.randint(0, VOCAB, (2, length), generator=torch.Generator().manual_seed(length))
    for s in range(2):
        store.add(s, length + 1)
        runner.prefill(store, s, prompts[s])
    with LargestNewTensor() as watch:
        runner.decode(store, [0, 1], prompts[:, -1])
    return watch.most


def test_paged_decode_allocates_per_block_not_per_length(model):
    """A decode step's largest new tensor does not grow with the sequences' length for the
    paged store (one block at a time), while the contiguous store's stacked copy does."""
    largest = {}
    for length in (24, 96):
        runner, kv = stores(model, budget_tokens=512, max_len=128, block_size=4)
        largest[length] = {kind: _largest_decode_tensor(model, store, length) for kind, store in kv.items()}
    gathered = 2 * runner.kv_heads * 96 * runner.head_dim  # K of both sequences at 96 tokens, contiguous
    assert largest[24]["paged"] == largest[96]["paged"] < gathered / 4
    assert largest[96]["contiguous"] >= gathered > largest[24]["contiguous"]


def test_static_batching_counts_a_finished_sequences_further_kv_writes_as_waste(model):
    """Hand-made batch: A (prompt 3, 2 tokens) finishes after one decode step but keeps being
    stepped with B (prompt 5, 6 tokens). KV positions in use after each model call:
    prefill A: 3; prefill B: 3 + 5; five decode steps: A stays at its 4 real positions
    (3 + 2 - 1) while B grows 6, 7, 8, 9, 10. A's later writes are waste, not use."""
    trace = [Request(0, 0.0, torch.tensor([1, 2, 3]), 2), Request(1, 0.0, torch.tensor([4, 5, 6, 7, 8]), 6)]
    runner, kv = stores(model, budget_tokens=64, max_len=16)
    store = kv["contiguous"]
    result = static.serve(runner, store, trace, max_batch=2)
    used = 3 + 8 + (4 + 6) + (4 + 7) + (4 + 8) + (4 + 9) + (4 + 10)
    assert result.used_byte_steps == used * store.token_bytes
    assert result.reserved_byte_steps == 7 * 2 * 16 * store.token_bytes  # two 16-token buffers, 7 calls
    assert [len(result.results[i].tokens) for i in (0, 1)] == [2, 6]


@pytest.mark.parametrize("mixer_params, reason", [
    ({"heads": 4, "attention": "local", "attention_params": {"window": 8}}, "approximation"),
    ({"heads": 4, "positional": "alibi"}, "ALiBi"),
])
def test_serving_refuses_attention_its_store_would_not_reproduce(mixer_params, reason):
    from impls.errors import Unsupported

    lm = LanguageModel(LMConfig(VOCAB, 32, 1, mixer="attention", mixer_params=mixer_params, ffn="none",
                                max_seq_len=64))
    with pytest.raises(Unsupported, match=reason):
        AttentionRunner(lm)


def test_serving_takes_an_exact_attention_impl():
    lm = LanguageModel(LMConfig(VOCAB, 32, 1, mixer="attention", mixer_params={"heads": 4, "attention": "chunked"},
                                ffn="none", max_seq_len=64))
    assert AttentionRunner(lm).n_layers == 1
