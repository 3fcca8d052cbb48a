"""The generate page: how fast each architecture and strategy decodes, as batch and prompt
grow; time to first token and per-token latency; speculative acceptance and speed-up against
draft length; cache bytes against generated length."""
from __future__ import annotations

from harness.report.data import RunInfo, Section
from harness.report.page import Part
from harness.report.pages import charts
from harness.report.pages.common import figure_or_reason, has, metric_along, swept
from harness.report.pages.generic import correctness_parts, failure_parts


def parts(section: Section, runs: list[RunInfo], metric: str) -> list[Part]:
    strategy = ["strategy"] if swept(section, "strategy") else []
    rate = "tokens_per_s"
    found = [metric_along(section, rate, "batch", "Tokens/s against batch",
                          "One line per architecture; strategy and the other axes in the dropdown."),
             metric_along(section, rate, "prompt_len", "Tokens/s against prompt length")]
    found.append(figure_or_reason(
        "Time to first token", charts.samples_box(section, "time_to_first_token_ms", strategy),
        "the records hold no per-call samples of time_to_first_token_ms (made before they were kept)",
        "One box per architecture and strategy: every timed call's time to its first token."))
    found.append(figure_or_reason(
        "Per-token latency", charts.percentile_bars(section, ["itl_p50_ms", "itl_p90_ms", "itl_p99_ms"], strategy,
                                                    "inter-token latency percentiles (median over timed calls)"),
        "the records hold no itl_p<q>_ms (made before per-call latencies were kept)"))
    found.append(figure_or_reason(
        "Speculative decoding", charts.speculative(section),
        "no speculative case with an acceptance rate beside a greedy case at the same point",
        "Measured: greedy's median time over speculative's at the same point. Expected: (1 - α^(k+1)) / (1 - α) "
        "tokens per target call, the speed-up if drafting cost nothing (Leviathan et al. 2023, Theorem 3.8); "
        "the gap below it is the draft's cost."))
    found.append(metric_along(section, "cache_bytes_final", "new_tokens", "Cache bytes against generated length",
                              "Bytes of the decoding state after the last token: a KV cache grows with "
                              "the tokens, a recurrent state does not."))
    if has(section, "peak_extra_bytes"):
        found.append(metric_along(section, "peak_extra_bytes", section.x, f"Peak extra memory against {section.x}"))
    return found + correctness_parts(section) + failure_parts(section)
