"""Each impl of a run beside a baseline impl at the same point: equal tokens, and each
metric with its 95% interval and the ratio's (bootstrap over the per-call samples, as
claims resample them: harness/claims/interval.py).

    python scripts/baseline_ratios.py results/decoding_hf-<time>            # baseline label: transformers
    python scripts/baseline_ratios.py RUN --baseline transformers --metric itl_p99_ms

A ratio above 1 means the impl's value is that many times the baseline's (for times:
slower; for tokens/s: faster). Tokens are compared by the records' tokens_digest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's harness and impls

from harness import results  # noqa: E402
from harness.claims import interval  # noqa: E402

METRICS = ["median_ms", "decode_tokens_per_s", "time_to_first_token_ms", "itl_p50_ms", "itl_p99_ms",
           "first_call_ms", "load_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--baseline", default="transformers", help="the baseline's label")
    parser.add_argument("--metric", action="append", help="metrics to show (repeatable); default: " + ", ".join(METRICS))
    args = parser.parse_args()
    frame = results.to_frame(results.read_records(args.run))
    frame = frame[frame["status"] == "ok"]
    axes = sorted({a for axes in frame["axes"] for a in axes})
    rng = interval.generator()
    for point, rows in frame.groupby(axes, dropna=False) if axes else [((), frame)]:
        base = rows[rows["label"] == args.baseline]
        if base.empty:
            continue
        base_row = base.iloc[0]
        for _, row in rows[rows["label"] != args.baseline].iterrows():
            _print_pair(dict(zip(axes, point if isinstance(point, tuple) else (point,))), row, base_row,
                        args.metric or METRICS, rng, args.baseline)


def _print_pair(at: dict, row: pd.Series, base: pd.Series, metrics: list[str], rng, baseline: str) -> None:
    equal = row.get("tokens_digest") == base.get("tokens_digest") and isinstance(row.get("tokens_digest"), str)
    print(f"{row['label']} vs {baseline} at {at}: tokens {'equal' if equal else 'DIFFER'}")
    for metric in metrics:
        if pd.isna(row.get(metric)) or pd.isna(base.get(metric)):
            continue
        ours, theirs = interval.column_draws(row, metric, rng), interval.column_draws(base, metric, rng)
        ratio = interval.ratio(ours, theirs).estimate()
        print(f"  {metric:24s} {ours.estimate().text():>28s}  {theirs.estimate().text():>28s}  ratio {ratio.text()}")


if __name__ == "__main__":
    main()
