"""The `generate` workload: decode new tokens from a language model.

The impl is a model preset (family "model"); the case picks the decoding
strategy, the cache mode and the precision. One timed call is one whole
`generate` (prefill + new_tokens decode steps). Every timed call's token
timestamps give its time to first token, inter-token latency p50/p90/p99 and
decode-only tokens/s (harness.measure.calls): each metric is the median over
timed calls, its per-call values the record's raw samples, judged by compare
like median_ms. What a call produced (cache bytes, acceptance rate, a digest of
the tokens) is read from the last one.

The preset "transformers" (impls.models.hf) decodes with transformers' own
`generate` on a local checkpoint: the baseline. Prompts are drawn from the
model's own vocabulary (a checkpoint's, or the preset's vocab_size), or are
windows of the corpus (`prompt: corpus`, harness.workloads.prompts). The
model's load from its files is timed with its peak memory (load_ms,
load_peak_extra_bytes).

Family "seq2seq" (encoder-decoder presets) decodes greedily (other
strategies are skipped, with the reason) from a random source, with the
encoder output computed once (`encoder_cache: true`) or again before every
step (false); both must give the same tokens.

Correctness: the cached decoding path must reproduce the full forward pass.
The generated tokens are fed back teacher-forced through the same cache mode,
and the logits compared with `forward` at the precision's tolerance.
`compile: true` decodes with the one-token step compiled (torch.compile over a
static cache, impls/decoding/compiled.py; it needs `cache: static`). The
correctness check then runs the compiled step too, over a cache one position
longer than the timed calls', so that those compile their own graph and the
record's first_call_ms holds the compile.
`weights: int8` stores every linear layer as INT8 weight-only
(impls.decoding.int8_weights); activations stay at the case's float precision,
and the int8_layers_<path> stats say which int8 matmul ran.
(Precision names what the preset is registered for; int8 weights are a
separate axis because the model presets register float precisions only.)
"""
from __future__ import annotations

import hashlib
from functools import partial
from typing import Any, Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.measure.calls import CallLog
from harness.workloads import draft_pair, prompts
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from harness.workloads.builder import ModelSize, build_sized
from impls import models, registry
from impls.models import hf
from impls.models.hf import TransformersLM
from impls.models.lm import param_count
from impls.decoding import generate
from impls.decoding.int8_weights import kernel_paths, quantize_linear_layers, weight_bytes
from impls.decoding.seq2seq import generate_seq2seq
from impls.decoding.session import Session
from impls.precision import FLOAT_DTYPES, LOGITS_TOLERANCE
from impls.registry import Impl


class GenerateParams(CommonParams):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    vocab_size: int = Field(256, ge=2)  # a preset's; ignored when trained (the corpus's) or for a checkpoint (its own)
    batch: int = Field(1, ge=1)
    prompt_len: int = Field(32, ge=1)
    new_tokens: int = Field(32, ge=1)
    strategy: Literal["greedy", "beam", "sampling", "speculative"] = "greedy"
    cache: Literal["none", "grow", "static", "window"] = "grow"
    window: int | None = Field(None, ge=1)  # cache="window": positions kept
    width: int = Field(4, ge=1)  # beam
    alpha: float = Field(0.0, ge=0)  # beam length normalisation exponent
    temperature: float = Field(1.0, ge=0)  # sampling and speculative (0: greedy)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    k: int = Field(4, ge=1)  # speculative: drafted tokens per round
    draft: str | None = None  # speculative: draft preset (default: the target's)
    draft_d_model: int = Field(32, ge=1)
    draft_n_layers: int = Field(1, ge=1)
    weights: Literal["float", "int8"] = "float"  # int8: INT8 weight-only linear layers
    compile: bool = False  # the one-token step compiled (needs cache: static)
    trained: bool = False  # train target (and draft) on the char corpus first (cached in results/cache)
    # random: prompt tokens drawn from the model's own vocabulary; corpus: windows of the text corpus
    # (a checkpoint's tokenizer.json where its folder has one, else characters)
    prompt: Literal["random", "corpus"] = "random"
    train_steps: int = Field(300, ge=1)


class Seq2SeqGenerateParams(CommonParams):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    src_vocab: int = Field(32, ge=2)
    tgt_vocab: int = Field(64, ge=2)
    batch: int = Field(1, ge=1)
    src_len: int = Field(32, ge=1)
    new_tokens: int = Field(32, ge=1)
    encoder_cache: bool = True  # False: re-encode the source before every decoder step
    strategy: Literal["greedy", "beam", "sampling", "speculative"] = "greedy"  # only greedy runs (skipped otherwise)


PARAMS = {"model": GenerateParams, "seq2seq": Seq2SeqGenerateParams}


@register_workload
class Generate(Workload):
    name = "generate"
    families = PARAMS

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        if case.family == "seq2seq":
            return _prepare_seq2seq(case, impl)
        p: GenerateParams = case.typed
        _reject_impossible(p, case)
        model, draft, prompt, facts = _models_and_prompt(case, p)
        options = _options(p, draft)
        decode = model.decode if isinstance(model, TransformersLM) else partial(generate, model)
        calls = _latency_log()
        last: dict[str, Any] = {}

        def run():
            last["generation"] = decode(prompt, p.new_tokens, p.strategy, **options)
            calls.log(last["generation"].stats)  # summarised after timing, not in the timed call

        def stats() -> dict[str, Any]:
            if "generation" not in last:
                run()
            out: dict[str, Any] = {**facts, **last["generation"].stats.metrics()}
            out.update(param_count=float(param_count(model)), weight_bytes=float(weight_bytes(model)),
                       tokens_digest=digest(last["generation"].tokens))
            # which int8 matmul ran (weight_int8pack_mm | int_mm | dequantize), as layer counts
            out.update({f"int8_layers_{path}": float(n) for path, n in kernel_paths(model).items()})
            return out

        return Prepared(run=run, check=lambda: check(model, prompt, p, options, decode), stats=stats,
                        work={"tokens": float(p.batch * p.new_tokens)}, calls=calls)


def _prepare_seq2seq(case: Case, impl: Impl) -> Prepared:
    p: Seq2SeqGenerateParams = case.typed
    if p.precision not in FLOAT_DTYPES:
        raise Skip(f"seq2seq generation runs float precisions, not {p.precision}")
    if p.strategy != "greedy":
        raise Skip(f"encoder-decoder decoding is greedy only (generate_seq2seq); no {p.strategy} for seq2seq")
    torch.manual_seed(p.seed)
    config = impl.fn(**{**impl.params, **case.impl_kwargs()}, src_vocab=p.src_vocab, tgt_vocab=p.tgt_vocab,
                     d_model=p.d_model, n_layers=p.n_layers, max_seq_len=max(p.src_len, p.new_tokens + 1))
    model = config.build().to(case.device).eval().to(FLOAT_DTYPES[p.precision])
    gen = torch.Generator().manual_seed(p.seed)
    src = torch.randint(0, p.src_vocab, (p.batch, p.src_len), generator=gen).to(case.device)
    last: dict[str, Any] = {}
    calls = _latency_log()

    def run():
        last["generation"] = generate_seq2seq(model, src, p.new_tokens, bos_id=0, reuse_memory=p.encoder_cache)
        calls.log(last["generation"].stats)

    def check() -> dict[str, float]:
        cached, reencoded = (generate_seq2seq(model, src, p.new_tokens, bos_id=0, reuse_memory=r).tokens
                             for r in (True, False))
        agree = float((cached == reencoded).float().mean())
        return {"token_agreement": agree, "within_tolerance": float(agree == 1.0)}

    def stats() -> dict[str, float]:
        if "generation" not in last:
            run()
        return last["generation"].stats.metrics()

    return Prepared(run=run, check=check, stats=stats, work={"tokens": float(p.batch * p.new_tokens)}, calls=calls)


def _latency_log() -> CallLog:
    """Each timed call's GenerationStats, turned into TTFT, ITL percentiles and decode tokens/s."""
    return CallLog(summarize=lambda stats: stats.latencies())


def _reject_impossible(p: GenerateParams, case: Case) -> None:
    if p.cache == "window" and p.window is None:
        raise Skip("cache=window needs a window")
    if p.compile and p.cache != "static":
        raise Skip(f"compile=true needs cache=static (a compiled step keeps every shape fixed), not {p.cache}")
    if p.precision not in FLOAT_DTYPES:
        raise Skip(f"the generate workload runs float precisions (int8 is weights: int8), not {p.precision}")
    if case.impl == "transformers":
        reason = hf.refusal(p.strategy, p.cache) or _unsupported_by_transformers(p)
        if reason:
            raise Skip(reason)


def _unsupported_by_transformers(p: GenerateParams) -> str | None:
    if p.trained:
        return "trained=true trains a seqbench preset; the transformers baseline decodes its checkpoint as is"
    if p.compile:
        return "compile=true is seqbench's compiled step; the transformers baseline runs transformers' generate"
    if p.weights != "float":
        return f"weights={p.weights} is seqbench's int8 path; the transformers baseline runs float weights"
    return None


def _models_and_prompt(case: Case, p: GenerateParams):
    """The target (and draft) at the case's precision, a prompt (B, prompt_len) from the
    model's own vocabulary, and the target's facts (size, load time and memory)."""
    max_len = p.prompt_len + p.new_tokens + p.k + 1
    draft, facts = None, {}
    if p.trained:
        size = dict(d_model=p.d_model, n_layers=p.n_layers, **case.impl_kwargs())
        model, text = draft_pair.trained(case.impl, size, p.train_steps, p.seed)
        if p.strategy == "speculative":
            draft, _ = draft_pair.trained(p.draft or case.impl, dict(d_model=p.draft_d_model,
                                          n_layers=p.draft_n_layers), p.train_steps, p.seed)
        gen = torch.Generator().manual_seed(p.seed)
        prompt = corpus_prompts(text.valid, p.batch, p.prompt_len, gen)
    else:
        size = ModelSize(d_model=p.d_model, n_layers=p.n_layers, vocab_size=p.vocab_size, seed=p.seed)
        # a checkpoint has its own vocabulary, which the prompt is drawn from: vocab_size does not apply
        needed = 2 if registry.get("model", case.impl).fixed_size else p.vocab_size
        model, facts = build_sized(case, size, needed, max_len)
        if p.strategy == "speculative":
            torch.manual_seed(p.seed + 1)
            draft = models.build(p.draft or case.impl, vocab_size=p.vocab_size, d_model=p.draft_d_model,
                                 n_layers=p.draft_n_layers, max_seq_len=max_len)
        gen = torch.Generator().manual_seed(p.seed)
        if p.prompt == "corpus":
            prompt = corpus_prompts(prompts.corpus_ids(case, model.config.vocab_size), p.batch, p.prompt_len, gen)
        else:  # the model's own vocabulary: a checkpoint's, or the preset's (vocab_size)
            prompt = torch.randint(0, model.config.vocab_size, (p.batch, p.prompt_len), generator=gen)
    model, draft = (_at_precision(m, p, case.device) if m is not None else None for m in (model, draft))
    return model, draft, prompt.to(case.device), facts


def corpus_prompts(ids: torch.Tensor, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(ids) - length, (batch,), generator=gen)
    return torch.stack([ids[s:s + length] for s in starts.tolist()])


def _at_precision(model: torch.nn.Module, p: GenerateParams, device: str) -> torch.nn.Module:
    model = model.to(device).eval().to(FLOAT_DTYPES[p.precision])
    return quantize_linear_layers(model) if p.weights == "int8" else model


def _options(p: GenerateParams, draft) -> dict[str, Any]:
    options: dict[str, Any] = {"cache": p.cache, "compile": p.compile}
    if p.window is not None:
        options["window"] = p.window
    if p.strategy == "beam":
        options.update(width=p.width, alpha=p.alpha)
    if p.strategy in ("sampling", "speculative"):
        options.update(temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, seed=p.seed)
    if p.strategy == "speculative":
        options.update(draft=draft, k=p.k)
    return options


def digest(tokens: torch.Tensor) -> str:
    """A short digest of generated tokens (B, new): two cases with equal digests generated
    the same tokens (pretrained against the transformers baseline, one cache mode against another)."""
    return hashlib.sha1(tokens.detach().to("cpu", torch.int64).numpy().tobytes()).hexdigest()[:16]


@torch.no_grad()
def check(model, prompt: torch.Tensor, p: GenerateParams, options: dict[str, Any], decode) -> dict[str, float]:
    """Teacher-forced logits through the case's cache mode vs the full forward pass,
    over the prompt and the tokens this case generates."""
    generated = decode(prompt, p.new_tokens, p.strategy, **(options | {"compile": False})).tokens
    tokens = torch.cat([prompt, generated.to(prompt.device)], 1)
    if p.cache == "none" or (p.cache == "window" and tokens.shape[1] > (p.window or 0) + 1):
        # no cache to check, or a window that differs from full attention by design: check the grow path
        cache, window = "grow", None
    else:
        cache, window = p.cache, p.window
    # a compiled check decodes over one more position than the timed calls: a graph of its own
    session = Session(model, tokens.shape[0], tokens.shape[1] + p.compile, cache, window, p.compile)
    split = p.prompt_len
    cached = [session.prefill(tokens[:, :split])]
    cached += [session.step(tokens[:, t])[:, None] for t in range(split, tokens.shape[1])]
    cached_logits = torch.cat(cached, 1).float()
    full = model(tokens).float()
    rel_err = float((cached_logits - full).abs().max() / full.abs().max().clamp(min=1e-12))
    tolerance = LOGITS_TOLERANCE[p.precision]
    return {"rel_err": rel_err, "tolerance": tolerance, "within_tolerance": float(rel_err <= tolerance)}
