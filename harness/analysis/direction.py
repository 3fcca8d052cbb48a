"""Which way is better for each metric, in one place for reports and compare.

Times, bytes, errors and losses are better low; rates (TFLOP/s, GB/s,
tokens/s, requests/s), fractions of the device's peak and quality scores
(accuracy, BLEU) are better high. A metric this table does not know is taken
as lower-is-better, the way of times and sizes.
"""
from __future__ import annotations

import re

HIGHER = {"tflops", "gbps", "throughput", "accuracy", "bleu", "exact_match", "acceptance_rate",
          "mean_accepted_length", "slo_attained", "beam_best_score_mean", "goodput"}
HIGHER_PATTERN = re.compile(r"^pct_|_per_s$|^goodput|throughput|accuracy")  # pct_: percent of a ceiling

# Rates computed by the worker as work per median call (harness.worker._rates): the
# samples behind median_ms are their samples too, on a reciprocal scale.
PER_MEDIAN_CALL = {"tflops", "gbps", "tokens_per_s", "chars_per_s", "pct_peak_flops", "pct_peak_bandwidth"}

# What a case is or how it was measured rather than how well it did (counts, sizes of the
# problem, the sample statistics that median_ms already stands for): not judged unless named.
DESCRIPTIVE = {"flops", "bytes_moved", "tokens", "chars", "new_tokens", "param_count", "d_model", "vocab_size",
               "threads", "check_seq_len", "tolerance", "grad_tolerance", "train_steps", "rounds", "peak_batch", "busy_fraction",
               "expected_peak_bytes", "kv_peak_contiguous_equiv_bytes", "initial_loss", "n_samples",
               "noise", "noisy", "timing_s", "warmup_s", "q1_ms", "q3_ms", "iqr_ms", "mean_ms",
               "ci_low_ms", "ci_high_ms", "target_params", "param_deviation", "ffn_hidden",
               # peak_extra_bytes is judged; these are it again (plus the inputs, or over a model's
               # figure), so judging them too would count the same noise twice
               "peak_bytes", "peak_ratio",
               "other_processes"}  # how shared the CPU was while timing (measure/contention.py)
# Distances from the reference: a case outside tolerance is already `wrong`; within it, a
# change of error is not a regression by itself.
CHECKS = {"rel_err", "max_abs_err", "exact_rel_err", "exact_max_abs_err", "grad_rel_err", "within_tolerance"}

TIME_PATTERN = re.compile(r"_(ms|s)(_|$)")


def higher_is_better(metric: str) -> bool:
    """True for rates, fractions of peak and quality scores; False for times, bytes, errors."""
    return metric in HIGHER or bool(HIGHER_PATTERN.search(metric))


def is_speed(metric: str) -> bool:
    """A time or a rate: its changes are 'faster'/'slower' rather than 'better'/'worse'."""
    return (bool(TIME_PATTERN.search(metric)) or metric in {"tflops", "gbps"} or metric.startswith("pct_")
            or metric.endswith("_per_s"))


DESCRIPTIVE_PATTERN = re.compile(r"^int8_layers_")  # which int8 kernel path ran: a count of layers


def judged_by_default(metric: str) -> bool:
    """Whether compare looks at this metric when no --metric is given."""
    return metric not in DESCRIPTIVE and metric not in CHECKS and not DESCRIPTIVE_PATTERN.search(metric)


def cost_ratio(metric: str, ratio: float) -> float:
    """NEW/BASE turned so that above 1 is always worse: the ratio itself for lower-is-better
    metrics, its inverse for higher-is-better ones (0.5x the TFLOP/s costs 2x the time)."""
    if not higher_is_better(metric):
        return ratio
    return 1.0 / ratio if ratio else float("inf")
