"""The metrics catalogue: every metric a record may hold, with its unit, which way is better,
its title, and whether compare judges it by default or only describes it.

The worker refuses to record a metric this catalogue does not name, and report, compare and
claims read direction and titles from here, so a new metric is added in one place, beside
its producer's name. A name the catalogue does not know is an UnknownMetric, never a guess.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable, Literal

from harness.profile.categories import CATEGORIES


@dataclass(frozen=True)
class Metric:
    name: str  # or, for a family of names, the pattern's readable form (val_ppl_<n>x)
    unit: str  # "ms", "s", "bytes", "FLOP", "TFLOP/s", "GB/s", "tokens/s", "%", "" (a count or ratio)
    better: Literal["lower", "higher"]
    title: str
    judged: bool = True  # compare judges it when no --metric names others; else it only describes
    speed: bool = False  # a time or a rate: its changes are faster/slower, not better/worse
    per_median_call: bool = False  # work per median call: median_ms's samples are its samples too


class UnknownMetric(ValueError):
    def __init__(self, name: str):
        close = difflib.get_close_matches(name, list(CATALOGUE), n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        super().__init__(f"metric '{name}' is not in the metrics catalogue (harness/metrics.py){hint}")
        self.name = name


def _time(name: str, title: str, unit: str = "ms", judged: bool = True) -> Metric:
    return Metric(name, unit, "lower", title, judged=judged, speed=True)


def _rate(name: str, unit: str, title: str, per_median_call: bool = False) -> Metric:
    return Metric(name, unit, "higher", title, speed=True, per_median_call=per_median_call)


def _low(name: str, unit: str, title: str) -> Metric:
    return Metric(name, unit, "lower", title)


def _high(name: str, unit: str, title: str) -> Metric:
    return Metric(name, unit, "higher", title)


def _about(name: str, unit: str, title: str, better: Literal["lower", "higher"] = "lower",
           speed: bool = False) -> Metric:
    """What a case is or how it was measured, not how well it did: shown, not judged unless named."""
    return Metric(name, unit, better, title, judged=False, speed=speed)


_ENTRIES = [
    # timing (harness.measure.stats.Summary over samples_ms, and the worker's warm-up)
    _time("median_ms", "median time per call (ms)"),
    _time("first_call_ms", "first call, compile and autotune included (ms)"),
    _time("warm_call_ms", "mean warm-up call (ms)"),
    *(_time(name, title, judged=False) for name, title in (
        ("q1_ms", "first quartile of the time per call (ms)"), ("q3_ms", "third quartile (ms)"),
        ("iqr_ms", "interquartile range (ms)"), ("mean_ms", "mean time per call (ms)"),
        ("ci_low_ms", "95% CI of the median, low (ms)"), ("ci_high_ms", "95% CI of the median, high (ms)"))),
    _time("timing_s", "time spent timing (s)", "s", judged=False),
    _time("warmup_s", "time spent warming up (s)", "s", judged=False),
    _about("n_samples", "", "timing samples"),
    _about("noise", "", "IQR / median"),
    _about("noisy", "", "noisy (IQR/median above noisy_above)"),
    _about("threads", "", "CPU threads"),
    _about("other_processes", "", "other runnable processes while timing"),
    # work per call and the rates derived from the median time (harness.worker)
    _about("flops", "FLOP", "FLOPs per call"),
    _about("bytes_moved", "bytes", "minimum bytes moved per call"),
    _about("tokens", "", "tokens per call"),
    _about("expected_peak_bytes", "bytes", "the impl's analytic peak memory (bytes)"),
    _rate("tflops", "TFLOP/s", "achieved TFLOP/s", per_median_call=True),
    _rate("gbps", "GB/s", "achieved GB/s", per_median_call=True),
    _rate("tokens_per_s", "tokens/s", "tokens per second", per_median_call=True),
    _rate("pct_peak_flops", "%", "% of peak FLOP/s", per_median_call=True),
    _rate("pct_peak_bandwidth", "%", "% of peak bandwidth", per_median_call=True),
    _rate("pct_roofline", "%", "% of the roofline"),  # the report's, from the calibration
    # memory (harness.measure.memory) and state sizes
    _low("peak_extra_bytes", "bytes", "peak extra memory (bytes)"),
    _about("peak_bytes", "bytes", "peak memory, inputs included (bytes)"),  # peak_extra_bytes again
    _about("peak_ratio", "", "peak memory / theoretical peak"),
    _low("nvml_process_bytes", "bytes", "NVML process memory (bytes)"),
    _low("state_bytes", "bytes", "state kept by the step (bytes)"),
    _low("state_bytes_per_seq", "bytes", "inference state per sequence (bytes)"),
    _low("cache_bytes_final", "bytes", "cache at the end of decoding (bytes)"),
    _low("weight_bytes", "bytes", "weights (bytes)"),
    _low("memory_bytes", "bytes", "cached encoder memory (bytes)"),
    _low("kv_peak_reserved_bytes", "bytes", "peak KV memory reserved (bytes)"),
    _about("kv_peak_contiguous_equiv_bytes", "bytes", "contiguous KV a paged peak stands for (bytes)"),
    # distributed cases (harness.workloads.distributed): per call and rank, the busiest rank's
    _time("rank_max_ms", "slowest rank's time per call (ms)"),
    _time("rank_min_ms", "fastest rank's time per call (ms)", judged=False),
    _about("rank_min_peak_extra_bytes", "bytes", "smallest rank's peak extra memory (bytes)"),
    _about("comm_bytes_counted", "bytes", "bytes a rank handed to communication per call (counted)"),
    _about("comm_bytes_expected", "bytes", "bytes a rank communicates per call, as the algorithm derives them"),
    _about("comm_bytes_measured", "bytes", "bytes a rank's process wrote to its sockets per call (measured)"),
    _about("comm_calls", "", "communication calls a rank made per call"),
    # checks against the reference: a case outside tolerance is already `wrong`
    *(_about(name, "", title) for name, title in (
        ("rel_err", "error relative to the reference"), ("max_abs_err", "largest error"),
        ("exact_rel_err", "error relative to exact attention"), ("exact_max_abs_err", "largest error vs exact"),
        ("grad_rel_err", "gradient error relative to the reference"), ("tolerance", "tolerance"),
        ("check_seq_len", "sequence length of the check"))),
    _about("within_tolerance", "", "within tolerance", "higher"),
    _about("token_agreement", "", "cached and re-encoded decoding agree", "higher"),
    _low("mismatched_requests", "", "served requests unlike decoding alone"),
    # model size
    *(_about(name, "", title) for name, title in (
        ("param_count", "parameters"), ("d_model", "model width"), ("vocab_size", "vocabulary"),
        ("target_params", "parameter budget"), ("param_deviation", "parameters / budget - 1"),
        ("ffn_hidden", "ffn width the budget chose"))),
    # decoding (impls.decoding.stats and the strategies' extras)
    # generate: the median over timed calls of each call's value, raw samples in metric_samples
    _time("time_to_first_token_ms", "time to first token (ms)"),
    _rate("decode_tokens_per_s", "tokens/s", "tokens per second after the first (decode only)"),
    # records written before the per-call samples: the last call's figures
    _time("per_token_ms_p50", "median time per new token, one call (ms)", judged=False),
    _time("per_token_ms_mean", "mean time per new token, one call (ms)", judged=False),
    _about("tokens_digest", "", "digest of the tokens the check generated (equal digests: equal tokens)"),
    # cold start (harness.workloads.builder): a checkpoint read from its files, as a server starts
    _time("load_ms", "model load to the device at the case's precision (ms)", judged=False),
    _about("load_peak_extra_bytes", "bytes", "peak extra memory while loading the model (bytes)"),
    # energy around the timing loop (harness.measure.energy): one reading per case, no samples, and
    # the counter sees the whole device or package, so compare shows it and judges it only when named
    _about("energy_j_per_call", "J", "energy per call (J)"),
    _about("energy_j_per_token", "J", "energy per token (J)"),
    _about("energy_counter", "", "energy counter read (nvml or rapl)"),
    _about("energy_not_measured", "", "why energy is not measured here"),
    _time("encode_s", "time encoding the source (s)", "s"),
    _about("new_tokens", "", "new tokens"),
    _about("rounds", "", "speculative rounds"),
    _about("encoder_calls", "", "encoder calls"),
    _high("acceptance_rate", "", "drafted tokens accepted"),
    _high("mean_accepted_length", "", "tokens committed per round"),
    _high("alpha", "", "expected acceptance E[sum min(p, q)]"),
    _high("beam_best_score_mean", "", "best beam's mean log-probability"),
    # serving (impls.serving.engine)
    _rate("output_tokens_per_s", "tokens/s", "output tokens per second"),
    _rate("requests_per_s", "requests/s", "requests per second"),
    _rate("goodput_requests_per_s", "requests/s", "requests per second meeting both targets"),
    _high("slo_attained", "", "requests meeting both targets"),
    _time("makespan_s", "time to serve the trace (s)", "s"),
    _low("kv_waste", "", "KV memory reserved but unused"),
    _about("busy_fraction", "", "time the model was busy"),
    _about("peak_batch", "", "largest batch"),
    _about("mean_batch", "", "mean decode batch"),
    # mixture of experts (impls.ffn.moe.routing_summary)
    _low("moe_tokens_dropped", "", "expert assignments over capacity"),
    _low("moe_load_max_over_mean", "", "busiest expert's load / even load"),
    _low("moe_load_cv", "", "coefficient of variation of expert load"),
    _low("moe_balance_loss", "", "load-balance loss"),
    _low("moe_z_loss", "", "router z-loss"),
    # training and quality (harness.quality)
    _about("loss_curve", "", "training loss every record_every steps"),
    _about("initial_loss", "", "loss at the first step"),
    _low("final_loss", "", "loss at the last step"),
    _low("diverged", "", "training diverged"),
    _about("train_steps", "", "training steps"),
    _time("train_s", "training time (s)", "s"),
    _low("val_loss", "", "validation loss"),
    _low("val_ppl", "", "validation perplexity"),
    _low("val_bpc", "", "validation bits per character"),
    _low("val_bits_per_token", "", "validation bits per token"),
    _high("accuracy", "", "accuracy"),
    _high("bleu", "", "BLEU"),
    _high("exact_match", "", "exact match"),
    _about("int8_kernel", "", "int8 kernel path that ran"),
    # compression (harness.workloads.compression)
    _about("kernel_path", "", "kernel each layer's last call took (path:layers)"),
    _low("fallback_layers", "", "quantized layers that dequantised instead of running a low-precision kernel"),
    _high("token_match", "", "greedy tokens equal to the uncompressed model's"),
    _about("zero_fraction", "", "block weights exactly zero"),
    _rate("speedup_vs_uncompressed", "", "uncompressed model's fastest call / this one's (alternated)"),
    _about("baseline_val_ppl", "", "the uncompressed (teacher) model's validation perplexity"),
    _high("rouge1", "", "ROUGE-1 F1"),
    _high("rouge2", "", "ROUGE-2 F1"),
    _high("rougeL", "", "ROUGE-L F1"),
    # GPU clocks around the case (harness.measure.gpu): conditions, not results
    *(_about(name, unit, title) for name, unit, title in (
        ("sm_clock_before_mhz", "MHz", "SM clock before"), ("sm_clock_after_mhz", "MHz", "SM clock after"),
        ("temperature_before_c", "C", "temperature before"), ("temperature_after_c", "C", "temperature after"),
        ("power_after_w", "W", "power after"), ("throttled", "", "clocks throttled"))),
    # text: tokenizers (harness.workloads.tokenize, the model workload's tokenizer param)
    _about("chars", "", "characters per call"),
    _rate("chars_per_s", "chars/s", "characters per second", per_median_call=True),
    _about("chars_per_token", "", "characters per token"),
    _about("chars_per_window", "", "characters per training window"),
    # long dialogues (harness.workloads.dialogue)
    _low("prompt_tokens_per_turn", "", "prompt words per question"),
    _low("max_prompt_tokens", "", "longest prompt (words)"),
    *(_about(name, "", title) for name, title in (("questions", "questions asked"), ("turns", "dialogue turns"))),
    # Evoformer ops (harness.workloads.op_evoformer)
    _low("unchunked_max_abs_err", "", "max |chunked - whole|"),
    *(_about(name, "", title) for name, title in (
        ("check_residues", "residues in the check"), ("check_msa_depth", "MSA depth in the check"),
        ("grad_tolerance", "gradient tolerance"))),
    # pitfalls (harness.pitfalls)
    _low("leak_rel", "", "largest change of an earlier output when a later token changes"),
    _about("first_leak_position", "", "first position that sees the future (-1: none)"),
    _about("perturbation_seen", "", "the perturbed position's own output changed", "higher"),
    _about("causal_ok", "", "no earlier output depends on a later token", "higher"),
    _low("loss_rel_err", "", "loss error of accumulated micro-batches"),
    _about("micro_batches", "", "micro-batches accumulated"),
    _about("accumulation_equivalent", "", "accumulated gradients equal one batch's", "higher"),
    _high("tf_accuracy", "", "teacher-forced accuracy"),
    _high("fr_accuracy", "", "free-running accuracy"),
    _low("exposure_gap", "", "teacher-forced minus free-running accuracy"),
    _high("tf_exact", "", "teacher-forced exact sequences"),
    _high("fr_exact", "", "free-running exact sequences"),
    _about("tf_accuracy_by_position", "", "teacher-forced accuracy by position"),
    _about("fr_accuracy_by_position", "", "free-running accuracy by position"),
    _about("forward_nonfinite", "", "the forward pass overflowed"),
    _about("loss_scale", "", "GradScaler's scale"),
    _about("overflow_backoffs", "", "GradScaler steps skipped"),
    # RLHF (harness.workloads.rlhf, impls.rlhf)
    _high("preference_accuracy", "", "held-out preference pairs ranked right by the reward model"),
    _low("preference_loss", "", "held-out Bradley-Terry loss"),
    *(_time(name, title) for name, title in (
        ("rollout_ms", "PPO rollout (sampling) per step (ms)"),
        ("scoring_ms", "PPO scoring (4 forward passes, rewards, GAE) per step (ms)"),
        ("update_ms", "PPO update (backward, optimizer) per step (ms)"))),
    *(_about(name, "", title) for name, title in (
        ("ppo_policy_loss", "PPO clipped policy loss (last step)"), ("ppo_value_loss", "PPO value loss (last step)"),
        ("ppo_kl", "mean per-token log pi - log pi_ref (last rollout)"),
        ("ppo_score", "mean reward-model score (last rollout)"),
        ("dpo_loss", "DPO loss (last step)"),
        ("dpo_reward_accuracy", "pairs the implicit reward ranks right (last step)"))),
    # the profiled pass (harness.profile), kept in profile/<case>/summary.json beside the records
    *(_about(f"profile_{name}_ms", "ms", f"profiled: {name.replace('_', ' ')} per call (ms)", speed=True)
      for name in CATEGORIES),
    _about("profile_call_ms", "ms", "profiled pass: time per call (ms)", speed=True),
    _about("profile_calls", "", "profiled calls"),
    _about("profile_overhead_ratio", "", "profiled call / timed median"),
    _about("profile_host_share", "", "share of the profiled call between operators (host overhead)"),
    _about("profile_launch_bound", "", "GPU idle over half the profiled pass (launch-bound)"),
    _about("profile_python_share", "", "share of a call's own time in Python (cProfile)"),
    _low("profile_energy_j_per_call", "J", "energy per call (J, NVML)"),
    _low("profile_energy_j_per_token", "J", "energy per token (J, NVML)"),
    _low("profile_energy_j_per_flop", "J", "energy per FLOP (J, NVML)"),
    _about("profile_power_w", "W", "mean power while calls ran back to back (W, NVML)"),
]
CATALOGUE: dict[str, Metric] = {m.name: m for m in _ENTRIES}

# Families of names, each made by one producer from a value it knows only at run time.
PATTERNS: list[tuple[re.Pattern[str], Metric]] = [
    (re.compile(r"^val_ppl_\d+x$"), _low("val_ppl_<n>x", "", "validation perplexity at n x seq_len")),
    (re.compile(r"^ppl_ratio_\d+x$"), _low("ppl_ratio_<n>x", "", "perplexity at n x seq_len / at seq_len")),
    (re.compile(r"^ttft_p\d+_ms$"), _time("ttft_p<q>_ms", "time to first token, percentile q (ms)")),
    # serve: over the requests of one trace; generate: the median over timed calls of each call's
    (re.compile(r"^itl_p\d+_ms$"), _time("itl_p<q>_ms", "inter-token latency, percentile q (ms)")),
    (re.compile(r"^int8_layers_\w+$"), _about("int8_layers_<path>", "", "layers on that int8 kernel path")),
    (re.compile(r"^underflow_frac_\w+$"), _low("underflow_frac_<how>", "", "gradient elements lost to underflow")),
    (re.compile(r"^grad_rel_err_\w+$"), _low("grad_rel_err_<how>", "", "gradient error against fp32")),
    (re.compile(r"^nonfinite_\w+$"), _low("nonfinite_<how>", "", "non-finite gradients")),
    (re.compile(r"^reward_\w+$"), _high("reward_<strategy>", "", "mean reward-model score of a decoding strategy's answers")),
    (re.compile(r"^copy_accuracy_\w+$"), _high("copy_accuracy_<strategy>", "", "answer tokens right, by decoding strategy")),
]
assert len(CATALOGUE) == len(_ENTRIES), "a metric is catalogued twice"


def get(name: str) -> Metric:
    """The catalogue's entry for `name`; UnknownMetric if it has none."""
    found = CATALOGUE.get(name)
    if found is not None:
        return found
    for pattern, metric in PATTERNS:
        if pattern.match(name):
            return metric
    raise UnknownMetric(name)


def check(names: Iterable[str]) -> None:
    """UnknownMetric for the first of `names` the catalogue does not know."""
    for name in names:
        get(name)


def title(name: str) -> str:
    return get(name).title


def is_percent_of_peak(name: str) -> bool:
    """A fraction of this device's measured ceilings (harness calibrate)."""
    return get(name).unit == "%"


def higher_is_better(name: str) -> bool:
    return get(name).better == "higher"


def is_speed(name: str) -> bool:
    """A time or a rate: its changes are 'faster'/'slower' rather than 'better'/'worse'."""
    return get(name).speed


def judged_by_default(name: str) -> bool:
    """Whether compare looks at this metric when no --metric is given."""
    return get(name).judged


def per_median_call(name: str) -> bool:
    return get(name).per_median_call


def cost_ratio(name: str, ratio: float) -> float:
    """NEW/BASE turned so that above 1 is always worse: the ratio itself for lower-is-better
    metrics, its inverse for higher-is-better ones (0.5x the TFLOP/s costs 2x the time)."""
    if not higher_is_better(name):
        return ratio
    return 1.0 / ratio if ratio else float("inf")
