"""The `compression` workload: one compression method applied to a trained model, its
decoding speed, its size and its quality, in one record.

Family "model" (decoder-only presets). The float model is trained first on the task
(char_lm: the pydoc char corpus through harness.workloads.draft_pair, cached under
results/cache/; selective_copy: the synthetic task, trained once per worker), then
compressed by `method` (impls.compression; "none" is the float model itself). One timed
call is a greedy generation of `new_tokens` from `batch` held-out prompts.

The record holds the kernel path the layers took (`kernel_path`; `fallback_layers` counts
layers that dequantised instead of running a low-precision kernel), the bytes of its
stored weights (`weight_bytes`), on a CPU `speedup_vs_uncompressed` (the float model's
fastest decode call over this one's, timed in alternation: robust to load that moves the
medians from case to case), and its quality: validation loss, perplexity and bits per
character (char_lm), accuracy of the greedy answers (selective_copy), and `token_match`,
the fraction of greedy tokens equal to the uncompressed model's from the same prompts.
`distill` trains a smaller student (student_d_model, student_n_layers) on the teacher's
softened logits; `student_scratch` trains the same student on the data alone, on the
same budget and batches: the pair shows what distillation buys.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.measure import timer
from harness.measure.calls import CallLog
from harness.quality import corpus, synthetic
from harness.quality.lm_tasks import EVAL_SEED_OFFSET
from harness.quality.metrics import bits_per_token, perplexity
from harness.quality.training import Budget, mean_nll, train
from harness.regression import interleaved_fastest
from harness.workloads import draft_pair
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from harness.workloads.generate import corpus_prompts
from impls import compression, models
from impls.compression import distill, prune, quantize
from impls.decoding import generate, int8_dynamic
from impls.decoding.int8_weights import quantize_linear_layers
from impls.models.lm import param_count
from impls.precision import FLOAT_DTYPES
from impls.registry import Impl

Method = Literal["none", "int8_weight_only", "int4_weight_only", "int8_dynamic", "w8a8_static", "w8a8_smoothquant", "fp8",
                 "prune_magnitude", "prune_structured", "prune_2_4", "distill", "student_scratch"]
TRAINED = ("distill", "student_scratch")
RESHAPED = ("prune_structured", *TRAINED)  # methods that make a model of another shape
# a growing KV cache: a static one asks a layer for its device, and a dynamically quantized
# layer keeps its weights packed, outside its parameters and buffers
CACHE = "grow"


class MethodParams(CommonParams):
    """The method and its settings: every family's."""

    method: Method = "none"
    train_steps: int = Field(300, ge=1)
    batch: int = Field(1, ge=1)  # prompts (sources) decoded at once in the timed call
    group_size: int = Field(32, ge=2)  # int4_weight_only
    calib_batches: int = Field(4, ge=1)  # w8a8_*: training batches the activation scales are taken from
    smooth_alpha: float = Field(0.5, ge=0, le=1)  # w8a8_smoothquant: migration strength
    sparsity: float = Field(0.5, ge=0, lt=1)  # prune_magnitude: weights zeroed; prune_structured: heads, channels


class CompressionParams(MethodParams):
    task: Literal["char_lm", "selective_copy"] = "char_lm"
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    seq_len: int = Field(64, ge=8)
    prompt_len: int = Field(16, ge=1)  # char_lm (selective_copy's prompt is its context)
    new_tokens: int = Field(32, ge=1)  # char_lm (selective_copy generates its answer)
    eval_tokens: int = Field(8192, ge=1)  # char_lm: validation characters; selective_copy: held-out sequences (<= 256)
    n_memorize: int = Field(8, ge=1)  # selective_copy
    n_symbols: int = Field(16, ge=2)  # selective_copy
    student_d_model: int = Field(32, ge=1)  # distill, student_scratch
    student_n_layers: int = Field(1, ge=1)
    temperature: float = Field(2.0, gt=0)  # distill
    distill_alpha: float = Field(0.5, ge=0, le=1)  # distill: weight of the soft (KL) term


class Seq2SeqCompressionParams(MethodParams):
    task: Literal["numbers"] = "numbers"
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    eval_samples: int = Field(200, ge=1)  # held-out numbers translated


@dataclass
class Task:
    """A trained float model and what it is judged on."""

    model: torch.nn.Module
    batches: Callable[[], Callable[[int], tuple]]  # a fresh seeded stream of training batches (inputs, targets, mask)
    eval_inputs: torch.Tensor
    eval_targets: torch.Tensor
    eval_mask: torch.Tensor | None
    prompts: torch.Tensor  # (N, P) held out: the first `batch` are the timed call's, all are judged
    new_tokens: int
    answers: torch.Tensor | None = None  # (N, new_tokens): selective_copy's right answers


@register_workload
class Compression(Workload):
    name = "compression"
    families = {"model": CompressionParams, "seq2seq": Seq2SeqCompressionParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p = case.typed
        if p.precision not in FLOAT_DTYPES:
            raise Skip(f"the compression workload starts from a float model; precision {p.precision} is not one")
        if case.family == "seq2seq":
            from harness.workloads.compression_seq2seq import prepare_seq2seq  # it builds on this module

            return prepare_seq2seq(case, p)
        task = _task(case.impl, p, case.impl_kwargs())
        # a copy: a task's trained model is kept for the worker's next case
        reference = copy.deepcopy(task.model).to(case.device, FLOAT_DTYPES[p.precision]).eval()
        stream = task.batches()  # calibration on training batches, never the held-out ones
        compressed = compress(reference, lambda: [stream(i)[0] for i in range(p.calib_batches)], case, p,
                              student=lambda: _student(reference, task, case, p))
        prompts = task.prompts[:p.batch].to(case.device)
        calls = CallLog(summarize=lambda stats: stats.latencies())
        last: dict[str, Any] = {}

        def run_on(model: torch.nn.Module):
            return generate(model, prompts, task.new_tokens, "greedy", cache=CACHE)

        def run():
            last["generation"] = run_on(compressed)
            calls.log(last["generation"].stats)

        def stats() -> dict[str, Any]:
            counted = compressed if p.method in RESHAPED else reference  # quantized layers hide their weights
            return {**sizes(compressed), "param_count": float(param_count(counted)),
                    **speedup(lambda: run_on(reference), lambda: run_on(compressed), case.device),
                    **_quality(compressed, reference, task, p, case.device)}

        return Prepared(run=run, stats=stats, calls=calls, work={"tokens": float(p.batch * task.new_tokens)})


def compress(model: torch.nn.Module, calibration: Callable[[], list], case: Case, p: MethodParams,
             student: Callable[[], torch.nn.Module] | None = None) -> torch.nn.Module:
    """The compressed model, or Skip with the reason this method cannot run here.
    `calibration()`: the batches (model inputs) w8a8 takes its scales from; `student()`:
    the distilled or scratch student (None: this family has none)."""
    method = p.method
    if method == "none":
        return model
    if method == "int8_weight_only":
        return quantize_linear_layers(copy.deepcopy(model))
    if method == "int4_weight_only":
        return quantize.int4_weight_only(model, p.group_size)
    if method == "int8_dynamic":
        if p.precision != "fp32":
            raise Skip(f"int8_dynamic quantizes from fp32 weights, not {p.precision}")
        return int8_dynamic.quantize(copy.deepcopy(model), case.device)
    if method in ("w8a8_static", "w8a8_smoothquant"):
        batches = [_to(batch, case.device) for batch in calibration()]
        return quantize.static_w8a8(model, batches, p.smooth_alpha if method == "w8a8_smoothquant" else None)
    if method == "fp8":
        return quantize.fp8(model)
    if method == "prune_magnitude":
        return prune.magnitude(model, p.sparsity)
    if method == "prune_structured":
        if case.family != "model":
            raise Skip("structured pruning removes the heads and MLP channels of the decoder-only LM's blocks")
        try:
            return prune.structured(model, p.sparsity)
        except ValueError as why:
            raise Skip(str(why)) from None
    if method == "prune_2_4":
        reason = prune.two_four_refusal(case.device)
        if reason:
            raise Skip(reason)
        return prune.two_four(model)
    if student is None:
        raise Skip(f"{method} trains a smaller decoder-only student; the {case.family} family has none")
    return student()


def _to(batch, device: str):
    """A batch (a tensor or a tuple of them) on `device`."""
    return tuple(t.to(device) for t in batch) if isinstance(batch, tuple) else batch.to(device)


def _student(teacher: torch.nn.Module, task: Task, case: Case, p: CompressionParams) -> torch.nn.Module:
    """The smaller model trained from scratch on the same batches, with or without the teacher."""
    if p.precision != "fp32":
        raise Skip(f"{p.method} trains in fp32, not {p.precision}")
    torch.manual_seed(p.seed)
    student = models.build(case.impl, vocab_size=teacher.config.vocab_size, d_model=p.student_d_model,
                           n_layers=p.student_n_layers, max_seq_len=teacher.config.max_seq_len,
                           **case.impl_kwargs()).to(case.device)
    budget = _budget(p)
    if p.method == "distill":
        distill.distill(student, teacher, task.batches(), budget, p.temperature, p.distill_alpha)
    else:
        train(student, task.batches(), budget)
    return student.eval()


def _budget(p: CompressionParams) -> Budget:
    return Budget(steps=p.train_steps, lr=3e-3, warmup_steps=min(20, p.train_steps))


# ---- tasks -------------------------------------------------------------------------------------

def _task(preset: str, p: CompressionParams, impl_kwargs: dict[str, Any]) -> Task:
    if p.task == "char_lm":
        return _char_lm(preset, p, impl_kwargs)
    if impl_kwargs:
        raise Skip("selective_copy trains the preset's defaults; impl params are for char_lm")
    return _selective_copy(preset, p.d_model, p.n_layers, p.train_steps, p.seed, p.seq_len, p.n_memorize,
                           p.n_symbols, p.eval_tokens)


EVAL_PROMPTS = 16  # char_lm: held-out prompts whose greedy tokens are compared


def _char_lm(preset: str, p: CompressionParams, impl_kwargs: dict[str, Any]) -> Task:
    model, text = draft_pair.trained(preset, dict(d_model=p.d_model, n_layers=p.n_layers, **impl_kwargs),
                                     p.train_steps, p.seed, seq_len=p.seq_len)
    inputs, targets = corpus.eval_windows(text.valid, p.seq_len, max(1, p.eval_tokens // p.seq_len))
    prompts = corpus_prompts(text.valid, max(p.batch, EVAL_PROMPTS), p.prompt_len, torch.Generator().manual_seed(p.seed))

    def batches():  # the stream draft_pair trained the teacher on: the student's budget is the teacher's
        gen = torch.Generator().manual_seed(p.seed)
        return lambda step: (*corpus.random_windows(text.train, 16, p.seq_len, gen), None)

    return Task(model, batches, inputs, targets, None, prompts, p.new_tokens)


@functools.lru_cache(maxsize=4)
def _selective_copy(preset: str, d_model: int, n_layers: int, steps: int, seed: int, seq_len: int,
                    n_memorize: int, n_symbols: int, eval_sequences: int) -> Task:
    """Trained once per worker process for these arguments."""
    options = {"n_memorize": n_memorize, "n_symbols": n_symbols}

    def batches():
        gen = torch.Generator().manual_seed(seed)

        def next_batch(step: int):
            b = synthetic.selective_copy(16, seq_len, gen, **options)
            return b.inputs, b.targets, b.mask
        return next_batch

    torch.manual_seed(seed)
    model = models.build(preset, vocab_size=synthetic.selective_copy_vocab(n_symbols), d_model=d_model,
                         n_layers=n_layers, max_seq_len=seq_len + 1)
    train(model, batches(), Budget(steps=steps, lr=3e-3, warmup_steps=min(20, steps)))
    held_out = synthetic.selective_copy(min(eval_sequences, 256), seq_len,
                                        torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET), **options)
    context = seq_len - n_memorize + 1  # the noisy context and the separator: the answer follows
    return Task(model.eval(), batches, held_out.inputs, held_out.targets, held_out.mask,
                held_out.inputs[:, :context], n_memorize, held_out.targets[:, context - 1:])


# ---- what the record says ------------------------------------------------------------------------

def sizes(model: torch.nn.Module) -> dict[str, Any]:
    paths = "+".join(part for part in (_dynamic_path(model), compression.layer_paths(model)) if part) or "none"
    fallback = sum(int(part.split(":")[1]) for part in paths.split("+") if part.startswith("dequantize:"))
    return {"kernel_path": paths, "fallback_layers": float(fallback),
            "weight_bytes": float(compression.stored_bytes(model)), "zero_fraction": prune.zero_fraction(model)}


# a few calls of each, alternated: a decode call is tens to hundreds of ms on a CPU
ALTERNATED = timer.TimerSettings(min_reps=1, max_reps=2, noise_target=0.05, max_time_s=0.05, threads=1)


def speedup(reference: Callable[[], object], compressed: Callable[[], object], device: str) -> dict[str, float]:
    """speedup_vs_uncompressed: the uncompressed model's fastest call over the compressed
    one's, the two timed in alternation (CPU only), so that load on a shared machine, which
    moves the records' medians from case to case, slows both alike."""
    if device != "cpu":
        return {}
    fastest = interleaved_fastest({"reference": reference, "compressed": compressed}, rounds=3, settings=ALTERNATED)
    return {"speedup_vs_uncompressed": fastest["reference"] / fastest["compressed"]}


def _dynamic_path(model: torch.nn.Module) -> str:
    """'quantized_dynamic_<engine>:<layers>' for torch.ao's dynamically quantized layers, else ''."""
    layers = sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in model.modules())
    return f"quantized_dynamic_{int8_dynamic.kernel_path(model)}:{layers}" if layers else ""


@torch.no_grad()
def _quality(model: torch.nn.Module, reference: torch.nn.Module, task: Task, p: CompressionParams,
             device: str) -> dict[str, float]:
    nll = mean_nll(model, task.eval_inputs, task.eval_targets, task.eval_mask)
    out = {"val_loss": nll, "val_ppl": perplexity(nll)}
    if p.task == "char_lm":
        out["val_bpc"] = bits_per_token(nll)  # one token is one character
    prompts = task.prompts.to(device)
    tokens = generate(model, prompts, task.new_tokens, "greedy", cache=CACHE).tokens.cpu()
    baseline = generate(reference, prompts, task.new_tokens, "greedy", cache=CACHE).tokens.cpu()
    out["token_match"] = float((tokens == baseline).float().mean())
    if task.answers is not None:
        out["accuracy"] = float((tokens == task.answers).float().mean())
    if p.method in TRAINED:
        out["baseline_val_ppl"] = perplexity(mean_nll(reference, task.eval_inputs, task.eval_targets, task.eval_mask))
    return out
