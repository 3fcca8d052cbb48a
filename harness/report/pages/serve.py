"""The serve page: throughput against latency across request rates, goodput, TTFT and
inter-token latency percentiles, and the KV memory each policy reserves."""
from __future__ import annotations

from harness.report.data import RunInfo, Section
from harness.report.page import Part
from harness.report.pages import charts
from harness.report.pages.common import figure_or_reason, has, left_out, lines_per, metric_along
from harness.report.pages.generic import correctness_parts, failure_parts
from harness.report.headline import contenders


def parts(section: Section, runs: list[RunInfo], metric: str) -> list[Part]:
    policy = contenders(section)
    by = [policy] if policy != "label" else []
    latency = next((m for m in ("ttft_p90_ms", "ttft_p50_ms") if has(section, m)), "ttft_p90_ms")
    found = [figure_or_reason(
        "Throughput against latency", charts.throughput_vs_latency(section, policy, latency),
        "needs output_tokens_per_s and a TTFT percentile at several request rates",
        "Each point is one request trace at the labelled arrival rate: up and to the left is better; "
        "the knee is where a policy saturates.")]
    lines = lines_per(section, policy)
    found.append(metric_along(lines, "goodput_requests_per_s", "rate", "Goodput against request rate",
                              "Requests per second that met both the TTFT and the inter-token latency targets."))
    for name, what in (("ttft", "time to first token"), ("itl", "inter-token latency")):
        found.append(figure_or_reason(
            f"{what.capitalize()} percentiles",
            charts.percentile_bars(section, [f"{name}_p50_ms", f"{name}_p90_ms", f"{name}_p99_ms"], by,
                                   f"{what} percentiles over the trace's requests"),
            f"the records hold no {name}_p<q>_ms"))
    found.append(metric_along(lines, "kv_peak_reserved_bytes", "rate", "KV memory reserved at peak",
                              "The most KV bytes each policy held reserved at once during the trace."))
    found.append(metric_along(lines, "kv_waste", "rate", "KV memory reserved but unused",
                              "Over the whole trace: 1 - (bytes used × steps) / (bytes reserved × steps). "
                              "A contiguous cache reserves each request's longest length up front; paging "
                              "reserves a block at a time."))
    found.append(left_out("KV memory reserved against used over time",
                          "serve records keep the peak and the share unused over the trace, not a time series"))
    return found + correctness_parts(section) + failure_parts(section)
