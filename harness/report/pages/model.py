"""The model page: tokens/s and memory against sequence length per architecture, with the
scaling exponents fitted to them."""
from __future__ import annotations

from harness.report import tables
from harness.report.data import RunInfo, Section
from harness.report.page import Part
from harness.report.pages.common import has, metric_along
from harness.report.pages.generic import correctness_parts, failure_parts
from harness.report.style import esc


def parts(section: Section, runs: list[RunInfo], metric: str) -> list[Part]:
    x = "seq_len" if "seq_len" in section.frame else section.x
    found = [metric_along(section, "tokens_per_s", x, f"Tokens/s against {x}",
                          "One line per architecture; direction, batch, precision and the parameter budget "
                          "in the dropdown."),
             metric_along(section, "peak_extra_bytes", x, f"Peak extra memory against {x}")]
    if has(section, "state_bytes_per_seq"):
        found.append(metric_along(section, "state_bytes_per_seq", x, f"Inference state per sequence against {x}",
                                  "What a sequence keeps between decoding steps: a KV cache grows with the "
                                  "length, a recurrent or SSM state does not."))
    found.append(Part("Scaling exponents", html=tables.exponents(section, "median_ms"),
                      caption=f"Slope of log(time) and log(memory) against log({esc(x)}), ok cases only: "
                              "1 is linear, 2 quadratic, 0 flat."))
    return found + correctness_parts(section) + failure_parts(section)
