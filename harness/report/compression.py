"""The compression table: per architecture, task and activation precision, every method's
kernel path, weight bytes, decoding tokens/s (and the speed-up over the float model timed
in alternation) and quality, with the methods on the Pareto front of quality against
tokens/s and of quality against bytes marked.

Quality is the task's own measure, turned into an error (lower is better) for the fronts:
validation perplexity (char_lm), 1 - accuracy (selective_copy), 100 - BLEU (numbers).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.pareto import pareto_front

ERROR = {"char_lm": ("val_ppl", lambda v: v), "selective_copy": ("accuracy", lambda v: 1 - v),
         "numbers": ("bleu", lambda v: 100 - v)}
COLUMNS = ["impl", "task", "method", "precision", "sparsity", "kernel_path", "weight_bytes", "tokens_per_s",
           "speedup_vs_uncompressed", "quality", "quality_metric", "token_match", "front_speed", "front_bytes"]


def compression_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per measured compression case (status ok), COLUMNS, sorted by impl, task and tokens/s."""
    done = frame[(frame["workload"] == "compression") & (frame["status"] == "ok")]
    # a suite that does not sweep precision leaves the workload's default (fp32) out of its records
    done = done.assign(precision=done["precision"].fillna("fp32") if "precision" in done else "fp32")
    groups = [_group(rows, task) for (_, task, _), rows in done.groupby(["impl", "task", "precision"])
              if task in ERROR]
    if not groups:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(groups, ignore_index=True)
    return table.sort_values(["impl", "task", "precision", "tokens_per_s"],
                             ascending=[True, True, False, False])[COLUMNS]


def _group(rows: pd.DataFrame, task: str) -> pd.DataFrame:
    metric, to_error = ERROR[task]
    rows = rows.assign(quality=rows[metric], quality_metric=metric)
    error = to_error(rows[metric].to_numpy(dtype=float))
    rows["front_speed"] = pareto_front(rows["tokens_per_s"].to_numpy(dtype=float), error, cost_higher_is_better=True)
    rows["front_bytes"] = pareto_front(rows["weight_bytes"].to_numpy(dtype=float), error)
    for column in COLUMNS:
        if column not in rows:
            rows[column] = np.nan
    return rows


def markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, a front marked with '*'."""
    lines = ["| arch | task | method | act. | kernel path | weight KiB | tokens/s | speed-up (alternated) | quality "
             "| token match | front |", "|---|---|---|---|---|---:|---:|---:|---|---:|---|"]
    for row in table.itertuples():
        method = row.method + (f" {row.sparsity:g}" if str(row.method).startswith("prune_") else "")
        front = "/".join(name for name, on in (("speed", row.front_speed), ("bytes", row.front_bytes)) if on)
        lines.append(f"| {row.impl} | {row.task} | {method} | {row.precision} | {row.kernel_path} | "
                     f"{row.weight_bytes / 1024:.0f} | {row.tokens_per_s:.0f} | {row.speedup_vs_uncompressed:.2f} | "
                     f"{row.quality_metric} {row.quality:.3g} | {row.token_match:.3f} | {front or '-'} |")
    return "\n".join(lines)
