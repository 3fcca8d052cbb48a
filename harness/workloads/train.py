"""The `train` workload: quality after a fixed, seeded training budget (not timed).

Family "model" (decoder-only LM presets) runs one of the LM tasks:
char_lm (validation perplexity and bits per character on a text corpus),
extrapolation (train at seq_len N, perplexity at N, 2N, 4N), selective_copy
and mqar (accuracy on held-out sequences). Family "seq2seq" runs numbers
(numbers to English words: BLEU, exact match). Every task also reports the
loss curve (a list), whether training diverged, the parameter count and, with
`target_params`, its deviation from it; a model with MoE layers, its routing
on the last evaluation batch (tokens dropped, expert load, auxiliary losses).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from harness.case import Case
from harness.errors import Skip
from harness.quality import lm_tasks, seq2seq_task, tokenization
from harness.workloads.base import CommonParams, Prepared, Workload, register_workload
from harness.workloads.builder import ModelSize, build_sized, sized_config
from impls.models.lm import param_count
from impls.ffn.moe import routing_summary
from impls.registry import Impl


class TrainBudget(CommonParams):
    """How long and how a model is trained, and how much is held out for evaluation."""

    steps: int = Field(200, ge=1)
    seconds: float | None = Field(None, gt=0)  # also stop after this much training time (not repeatable)
    batch: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)  # null: no clipping
    record_every: int = Field(10, ge=1)  # loss-curve resolution, in steps
    eval_samples: int = Field(256, ge=1)  # held-out sequences (synthetic) or numbers (seq2seq)


class LMTrainParams(TrainBudget, ModelSize):
    task: Literal["char_lm", "extrapolation", "selective_copy", "mqar"] = "char_lm"
    seq_len: int = Field(128, ge=2)
    d_model: int = Field(64, ge=1)
    corpus: str | None = None  # a UTF-8 text file; default: Python's pydoc topics
    tokenizer: str = Field("char", pattern=tokenization.TOKENIZER_PATTERN)  # char | bpe-<vocab> (corpus tasks)
    eval_tokens: int = Field(16384, ge=1)  # validation characters per evaluated length
    n_memorize: int = Field(8, ge=1)  # symbols to copy (selective_copy) / key-value pairs (mqar)
    n_symbols: int = Field(16, ge=2)  # alphabet of symbols, keys and values

    @field_validator("corpus")
    @classmethod
    def _corpus_exists(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"no such text file: {path}")
        return path

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_vocab(cls, name: str) -> str:
        if name != "char":
            tokenization.check_vocab(name)  # a vocabulary too small is a ValueError, said in one line
        return name


class Seq2SeqTrainParams(TrainBudget):
    task: Literal["numbers"] = "numbers"
    batch: int = Field(32, ge=1)
    d_model: int = Field(64, ge=1)
    target_params: int | None = Field(None, ge=1)  # overrides d_model, as in the model workload
    n_layers: int = Field(2, ge=1)
    eval_samples: int = Field(200, ge=1)
    scheduled_sampling: float = Field(0.0, ge=0, le=1)  # final probability of feeding back predictions
    curriculum: bool = False  # short numbers first


PARAMS = {"model": LMTrainParams, "seq2seq": Seq2SeqTrainParams}


@register_workload
class Train(Workload):
    name = "train"
    families = PARAMS

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p = case.typed
        if p.precision != "fp32":
            raise Skip(f"the train workload trains in fp32 only (got {p.precision})")
        stats = (lambda: _lm_stats(case, p)) if case.family == "model" else (lambda: _seq2seq_stats(case, p))
        return Prepared(run=lambda: None, stats=stats, timed=False)


def _lm_stats(case: Case, p: LMTrainParams) -> dict[str, Any]:
    built: dict[str, Any] = {}

    def make_model(vocab_size: int, max_seq_len: int) -> torch.nn.Module:
        built["model"], built["facts"] = build_sized(case, p, vocab_size, max_seq_len, backward=True)
        return built["model"]

    metrics = lm_tasks.TASKS[p.task](make_model, p)
    return {**metrics, **built["facts"], **routing_summary(built["model"])}


def _seq2seq_stats(case: Case, p: Seq2SeqTrainParams) -> dict[str, Any]:
    built: dict[str, Any] = {}

    def make_model(src_vocab: int, tgt_vocab: int, max_seq_len: int) -> torch.nn.Module:
        model_config, built["facts"] = sized_config(
            case.impl, "seq2seq", p.d_model, p.target_params, src_vocab=src_vocab, tgt_vocab=tgt_vocab,
            n_layers=p.n_layers, max_seq_len=max_seq_len, **case.impl_kwargs())
        torch.manual_seed(p.seed)
        built["model"] = model_config.build().to(case.device)
        return built["model"]

    metrics = seq2seq_task.numbers_to_words(make_model, p)
    model = built["model"]
    return {**metrics, "param_count": float(param_count(model)), "d_model": float(model.config.d_model),
            **built["facts"], **routing_summary(model)}
