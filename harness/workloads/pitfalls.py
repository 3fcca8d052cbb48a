"""The `pitfalls` workload: one check of harness.pitfalls on a model preset (not timed).

`check` picks it: causal_leak, grad_accum, mixed_precision or exposure_bias. A
causal leak is a correctness error, so a leaking model's case is `wrong` (its
`rel_err` is the leak); the other checks are measurements, each with its own
verdict metric (accumulation_equivalent, the underflow fractions, exposure_gap).
mixed_precision runs autocast at the case's precision (fp16 or bf16) against
fp32; the others run in fp32.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.pitfalls.causal_leak import LEAK_TOLERANCE, causal_leak
from harness.pitfalls.exposure_bias import exposure_bias
from harness.pitfalls.grad_accum import grad_accumulation
from harness.pitfalls.mixed_precision import AUTOCAST_DTYPES, mixed_precision
from harness.quality.lm_tasks import budget
from harness.workloads.base import Prepared, Workload, register_workload
from harness.workloads.builder import ModelSize, build_sized
from harness.workloads.train import TrainBudget
from impls.registry import Impl


class PitfallParams(TrainBudget, ModelSize):
    check: Literal["causal_leak", "grad_accum", "mixed_precision", "exposure_bias"] = "causal_leak"
    seq_len: int = Field(64, ge=2)
    d_model: int = Field(64, ge=1)
    micro_batches: int = Field(4, ge=1)  # grad_accum: must divide batch
    loss_weight: float = Field(1.0, gt=0)  # mixed_precision: moves the gradients down or up the range
    init_scale: float = Field(2.0 ** 16, gt=0)  # mixed_precision: GradScaler's first scale
    n_memorize: int = Field(8, ge=1)  # exposure_bias: symbols to copy
    n_symbols: int = Field(8, ge=2)  # exposure_bias: their alphabet


@register_workload
class Pitfalls(Workload):
    name = "pitfalls"
    families = {"model": PitfallParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: PitfallParams = case.typed
        mixed = p.check == "mixed_precision"
        if mixed != (p.precision in AUTOCAST_DTYPES):
            raise Skip("mixed_precision runs at fp16 or bf16 (autocast against fp32), the other checks at fp32; "
                       f"got {p.check} at {p.precision}")
        if p.check == "grad_accum" and p.batch % p.micro_batches:
            raise Skip(f"micro_batches={p.micro_batches} does not divide batch={p.batch}")
        if p.check == "causal_leak":
            return Prepared(run=lambda: None, check=lambda: _causal(case, p), timed=False)
        return Prepared(run=lambda: None, stats=lambda: _measure(case, p), timed=False)


def _model(case: Case, p: PitfallParams, vocab_size: int, max_seq_len: int, backward: bool) -> torch.nn.Module:
    return build_sized(case, p, vocab_size, max_seq_len, backward=backward)[0]


def _causal(case: Case, p: PitfallParams) -> dict[str, float]:
    model = _model(case, p, p.vocab_size, p.seq_len, backward=False)
    result = causal_leak(model, model.config.vocab_size, p.batch, p.seq_len, torch.Generator().manual_seed(p.seed))
    # read by the worker: a leak (or a perturbation no output saw) makes the case `wrong`
    return result | {"rel_err": result["leak_rel"], "tolerance": LEAK_TOLERANCE,
                     "within_tolerance": result["causal_ok"]}


def _measure(case: Case, p: PitfallParams) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(p.seed)
    if p.check == "exposure_bias":
        return exposure_bias(lambda vocab, length: _model(case, p, vocab, length, backward=True), budget(p),
                             p.batch, p.seq_len, p.n_memorize, p.n_symbols, p.eval_samples, p.seed)
    model = _model(case, p, p.vocab_size, p.seq_len, backward=True)
    vocab = model.config.vocab_size
    if p.check == "grad_accum":
        return grad_accumulation(model, vocab, p.batch, p.seq_len, p.micro_batches, gen)
    return mixed_precision(model, vocab, p.batch, p.seq_len, p.precision, gen, p.loss_weight, p.init_scale)
