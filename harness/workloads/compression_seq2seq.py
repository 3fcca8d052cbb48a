"""The compression workload's seq2seq family: numbers to English words
(harness.quality.seq2seq_task), trained once per worker, then compressed.

One timed call greedily translates `batch` held-out numbers (encoder once, then a
cached decoder step per word). Quality: BLEU (sacrebleu) and ROUGE-1/2/L F1
(rouge-score) of the greedy translations of `eval_samples` held-out numbers, their exact
match, the teacher-forced validation loss and perplexity of the right translations, and
token_match, the share of greedy target tokens equal to the uncompressed model's.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

import torch

from harness.case import Case
from harness.measure.calls import CallLog
from harness.quality import numbers
from harness.quality.metrics import bleu, exact_match, perplexity, rouge
from harness.quality.seq2seq_task import MAX_TARGET, greedy, train_numbers, translations
from harness.quality.training import token_loss
from harness.workloads.base import Prepared
from harness.workloads.builder import sized_config
from harness.workloads.compression import Seq2SeqCompressionParams, compress, sizes, speedup
from harness.workloads.train import Seq2SeqTrainParams
from impls.decoding.seq2seq import generate_seq2seq
from impls.models.lm import param_count
from impls.precision import FLOAT_DTYPES


def prepare_seq2seq(case: Case, p: Seq2SeqCompressionParams) -> Prepared:
    trained, data = _trained(case.impl, tuple(sorted(case.impl_kwargs().items())), p.d_model, p.n_layers,
                             p.train_steps, p.seed, p.eval_samples)
    reference = copy.deepcopy(trained).to(case.device, FLOAT_DTYPES[p.precision]).eval()
    gen = torch.Generator().manual_seed(p.seed)

    def calibration() -> list[tuple[torch.Tensor, torch.Tensor]]:
        batches = [numbers.sample(data.train, 32, gen) for _ in range(p.calib_batches)]
        return [(b.src, b.tgt_in) for b in batches]

    compressed = compress(reference, calibration, case, p)
    test = numbers.pairs(data.test.tolist())
    src = test.src[:p.batch].to(case.device)
    calls = CallLog(summarize=lambda stats: stats.latencies())
    last: dict[str, Any] = {}

    def run_on(model: torch.nn.Module):
        return generate_seq2seq(model, src, MAX_TARGET, bos_id=numbers.BOS)

    def run():
        last["generation"] = run_on(compressed)
        calls.log(last["generation"].stats)

    def stats() -> dict[str, Any]:
        return {**sizes(compressed), "param_count": float(param_count(reference)),
                **speedup(lambda: run_on(reference), lambda: run_on(compressed), case.device),
                **_quality(compressed, reference, test, case.device)}

    return Prepared(run=run, stats=stats, calls=calls, work={"tokens": float(p.batch * MAX_TARGET)})


@functools.lru_cache(maxsize=4)
def _trained(preset: str, impl_kwargs: tuple, d_model: int, n_layers: int, steps: int, seed: int,
             eval_samples: int) -> tuple[torch.nn.Module, numbers.Split]:
    """The float model trained once per worker process for these arguments (train's defaults otherwise)."""
    p = Seq2SeqTrainParams(steps=steps, d_model=d_model, n_layers=n_layers, seed=seed, eval_samples=eval_samples)

    def make_model(src_vocab: int, tgt_vocab: int, max_seq_len: int) -> torch.nn.Module:
        config, _ = sized_config(preset, "seq2seq", d_model, None, src_vocab=src_vocab, tgt_vocab=tgt_vocab,
                                 n_layers=n_layers, max_seq_len=max_seq_len, **dict(impl_kwargs))
        torch.manual_seed(seed)
        return config.build()

    model, _, data = train_numbers(make_model, p)
    return model.eval(), data


@torch.no_grad()
def _quality(model: torch.nn.Module, reference: torch.nn.Module, test: numbers.Pairs,
             device: str) -> dict[str, float]:
    hypotheses, references = translations(model, test)
    src, tgt_in, tgt_out = (t.to(device) for t in (test.src, test.tgt_in, test.tgt_out))
    nll = float(token_loss(model(src, tgt_in), tgt_out, tgt_out != numbers.PAD))
    tokens, baseline = (torch.tensor(greedy(m, src)) for m in (model, reference))
    return {"bleu": bleu(hypotheses, references), **rouge(hypotheses, references),
            "exact_match": exact_match(hypotheses, references), "val_loss": nll, "val_ppl": perplexity(nll),
            "token_match": float((tokens == baseline).float().mean())}
