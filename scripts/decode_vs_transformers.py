"""Greedy decoding against transformers' `generate` on the same GPT-2 checkpoint.

For each shape a random GPT-2 checkpoint is built with transformers (GPT2Config,
GPT2LMHeadModel.save_pretrained into a temporary folder) and loaded again with
impls.models.from_pretrained. Every variant decodes the same prompt greedily; the
variants of a shape are timed in alternation in one process (one whole `generate`
per sample, the first call apart: for a compiled variant that is the compile), so
load that comes and goes touches all of them. Printed per variant: its first call,
fastest and median time per generate (median with its 95% interval), tokens/s, its
ratio to transformers at the same activation dtype (ratio of fastest samples, and
the median of the per-round ratios with its 95% interval), and for seqbench the
weight-read bandwidth of one decode step: bytes of weights a step reads over the
per-token time (the median step of the call with the fastest one), and its share of
the one-thread read bandwidth, measured as `python -m harness calibrate` does (a sum
over 256 MB) and timed in the same alternation (its fastest sample).

    python scripts/decode_vs_transformers.py                     # 124m and small, 5 rounds
    python scripts/decode_vs_transformers.py --shapes small --rounds 9
    python scripts/decode_vs_transformers.py --shapes 124m --variants fp32 bf16 int8

Tokens of the fp32 variants must equal transformers' (the script stops otherwise);
bf16 and int8 ones are reported as the fraction that agrees.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness and impls, whatever is installed

from harness.measure import allocator, calibrate  # noqa: E402
from harness.measure.stats import median_ci  # noqa: E402
from impls.decoding import generate  # noqa: E402
from impls.decoding.int8_weights import quantize_linear_layers  # noqa: E402
from impls.models import from_pretrained  # noqa: E402

# GPT-2 shapes: the 124M model, and a small one where per-step overhead dominates.
SHAPES = {
    "124m": dict(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024),
    "small": dict(n_layer=4, n_embd=256, n_head=4, vocab_size=2048, n_positions=1024, bos_token_id=0,
                  eos_token_id=0),
}
# variant -> (activation dtype, int8 weights, compiled step)
VARIANTS = {
    "fp32": (torch.float32, False, False),
    "fp32-compiled": (torch.float32, False, True),
    "bf16": (torch.bfloat16, False, False),
    "bf16-compiled": (torch.bfloat16, False, True),
    "int8": (torch.bfloat16, True, False),  # torch's x86 int8 weight kernel wants bf16 activations
}
DEFAULT_VARIANTS = {"124m": ["fp32", "fp32-compiled", "bf16", "bf16-compiled", "int8"],
                    "small": ["fp32", "fp32-compiled"]}
READ = "one-thread read"


@dataclass
class Row:
    name: str
    run: Callable[[], torch.Tensor]  # one whole generate -> new tokens (B, new)
    dtype: torch.dtype | None
    first_s: float = 0.0
    samples_ms: list[float] = field(default_factory=list)
    per_token_ms: list[float] = field(default_factory=list)  # seqbench: median decode step of each call
    weight_bytes: int = 0  # seqbench: bytes of weights one decode step reads
    tokens: torch.Tensor | None = None


def checkpoint(shape: str, folder: Path, seed: int) -> Any:
    """A random GPT-2 checkpoint of `shape` saved in `folder`; the transformers model."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**SHAPES[shape])).eval()
    model.save_pretrained(folder)
    return model


def transformers_row(model: Any, prompt: torch.Tensor, new_tokens: int, dtype: torch.dtype) -> Row:
    model = model.to(dtype)
    # no EOS: every call decodes exactly new_tokens, like seqbench's generate
    options = dict(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
    mask = torch.ones_like(prompt)

    def run() -> torch.Tensor:
        with torch.no_grad():
            return model.generate(prompt, attention_mask=mask, **options)[:, prompt.shape[1]:]

    return Row(f"transformers {str(dtype).removeprefix('torch.')}", run, dtype)


def step_weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of weights a decode step reads: every parameter and buffer but the position
    table, of which a step reads one row (a tied head counted once)."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    table = getattr(model.positional, "table", None) if model.positional is not None else None
    tensors.pop(id(table), None)
    return sum(t.numel() * t.element_size() for t in tensors.values())


def seqbench_row(folder: Path, variant: str, prompt: torch.Tensor, new_tokens: int) -> Row:
    dtype, int8, compiled = VARIANTS[variant]
    model = from_pretrained(folder).to(dtype)
    if int8:
        model = quantize_linear_layers(model)
    options = {"compile": True} if compiled else {}
    row = Row(f"seqbench {variant}", lambda: None, dtype, weight_bytes=step_weight_bytes(model))

    def run() -> torch.Tensor:
        generation = generate(model, prompt, new_tokens, **options)
        row.per_token_ms.append(generation.stats.latencies()["itl_p50_ms"])
        return generation.tokens

    row.run = run
    return row


def time_rows(rows: list[Row], rounds: int) -> None:
    """First call of each row, then `rounds` rounds of one timed call of each, in turn (a
    call takes from a tenth of a second to seconds: one call is one sample)."""
    allocator.steady()  # as in a harness worker
    for row in rows:
        start = time.perf_counter()
        row.tokens = row.run()
        row.first_s = time.perf_counter() - start
        row.per_token_ms.clear()
    for _ in range(rounds):
        for row in rows:
            start = time.perf_counter()
            row.run()
            row.samples_ms.append((time.perf_counter() - start) * 1e3)


def interval(values: list[float]) -> tuple[float, float, float]:
    """Median and its 95% interval (order statistics; the range under six values)."""
    x = np.sort(np.asarray(values))
    low, high = median_ci(x)
    return float(np.median(x)), low, high


def read_row() -> Row:
    """One read of READ_BYTES with one thread, as `harness calibrate` measures its read
    bandwidth (calibrate.read_rate), timed here beside the decodes."""
    src = torch.ones(calibrate.READ_BYTES["cpu"] // 4)
    return Row(READ, src.sum, None)


def report(shape: str, rows: list[Row], new_tokens: int, batch: int) -> None:
    read = next(row for row in rows if row.name == READ)
    rows = [row for row in rows if row is not read]
    bandwidth = calibrate.READ_BYTES["cpu"] / (min(read.samples_ms) / 1e3)
    print(f"\n{shape}: one-thread read bandwidth {bandwidth / 1e9:.2f} GB/s (fastest of {len(read.samples_ms)})")
    print(f"{shape}: batch {batch}, {new_tokens} new tokens, one thread; ms per generate "
          f"(median [95% interval]); ratio = transformers' time / this one's (>1: faster)")
    print(f"{'variant':24} {'first s':>8} {'fastest':>9} {'median [interval]':>26} {'tok/s':>7} "
          f"{'ratio fastest':>13} {'ratio median [interval]':>26} {'step GB/s':>9} {'of read bw':>10}")
    baselines = {row.dtype: row for row in rows if row.name.startswith("transformers")}
    for row in rows:
        median, low, high = interval(row.samples_ms)
        fastest = min(row.samples_ms)
        line = (f"{row.name:24} {row.first_s:8.2f} {fastest:9.1f} {median:9.1f} [{low:7.1f}, {high:7.1f}] "
                f"{batch * new_tokens / (fastest / 1e3):7.1f}")
        base = baselines.get(row.dtype)
        if base is not None and base is not row:
            per_round = [b / r for b, r in zip(base.samples_ms, row.samples_ms)]
            r_med, r_low, r_high = interval(per_round)
            line += f" {min(base.samples_ms) / fastest:13.3f} {r_med:9.3f} [{r_low:6.3f}, {r_high:6.3f}]"
        else:
            line += f" {'':13} {'':26}"
        if row.weight_bytes and row.per_token_ms:
            step_ms = row.per_token_ms[row.samples_ms.index(fastest)]
            gbps = row.weight_bytes / (step_ms / 1e3) / 1e9
            line += f" {gbps:9.2f} {gbps * 1e9 / bandwidth:10.0%}"
        print(line, flush=True)
    float_rows = [row for row in rows if row.tokens is not None]
    for row in float_rows:
        base = baselines.get(row.dtype) or baselines.get(torch.float32)
        if base is not None and base is not row and not row.name.startswith("transformers"):
            agree = float((row.tokens == base.tokens).float().mean())
            print(f"  tokens of {row.name} equal to {base.name}'s: {agree:.1%}")


def check_tokens(rows: list[Row]) -> None:
    """fp32 seqbench variants must choose transformers' fp32 tokens."""
    base = next((r for r in rows if r.name == "transformers float32"), None)
    for row in rows:
        if base is not None and row.dtype == torch.float32 and row is not base and not torch.equal(row.tokens, base.tokens):
            raise SystemExit(f"{row.name}: greedy tokens differ from transformers' "
                             f"(first at {int((row.tokens != base.tokens).nonzero()[0, 1])})")


def run_shape(shape: str, variants: list[str], args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        hf = checkpoint(shape, Path(tmp), args.seed)
        gen = torch.Generator().manual_seed(args.seed)
        prompt = torch.randint(0, SHAPES[shape]["vocab_size"], (args.batch, args.prompt_len), generator=gen)
        dtypes = list(dict.fromkeys(VARIANTS[v][0] for v in variants))
        rows = [seqbench_row(Path(tmp), v, prompt, args.new_tokens) for v in variants]
        rows += [transformers_row(hf if d == torch.float32 else _copy(hf), prompt, args.new_tokens, d) for d in dtypes]
    rows.append(read_row())
    time_rows(rows, args.rounds)
    check_tokens(rows)
    report(shape, rows, args.new_tokens, args.batch)


def _copy(model: Any) -> Any:
    import copy

    return copy.deepcopy(model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        help="seqbench variants (default: fp32, bf16, int8 at 124m; fp32 and compiled at small)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for shape in args.shapes:
        run_shape(shape, args.variants or DEFAULT_VARIANTS[shape], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
