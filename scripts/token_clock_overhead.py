"""What stamping every token costs: greedy decoding with the Recorder seqbench times with
(impls.decoding.stats: a clock read and a list append per token) against the same loop
with a recorder that does nothing, alternated in one process, as a ratio of fastest calls.

    python scripts/token_clock_overhead.py                   # d 64 x 2 layers and d 256 x 4
    python scripts/token_clock_overhead.py --rounds 30 --new-tokens 128

A ratio of 1.00 means the stamps cost nothing measurable; the smallest model shows the most.
On a loaded machine the ratio of whole calls moves by several percent either way, so the
script also times `Recorder.emitted` alone (the fastest of 5 blocks of 20,000 stamps) and
states it as a fraction of the fastest decode step.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's harness and impls

from impls import models  # noqa: E402
from impls.decoding import greedy  # noqa: E402
from impls.decoding.stats import Recorder  # noqa: E402


class Silent(Recorder):
    """No clock, no lists: the loop as it would run without per-token timestamps."""

    def emitted(self, n_tokens: int, length: int, cache_bytes: int | None) -> None:
        pass


def fastest_call_s(model, prompt: torch.Tensor, new_tokens: int, recorder_type: type[Recorder]) -> float:
    start = time.perf_counter()
    greedy.decode(model, prompt, new_tokens, recorder_type(prompt.shape[0]), cache="static")
    return time.perf_counter() - start


def stamp_us() -> float:
    """The fastest per-stamp cost of Recorder.emitted, in microseconds."""
    best = float("inf")
    for _ in range(5):
        recorder = Recorder(1)
        start = time.perf_counter()
        for i in range(20_000):
            recorder.emitted(1, i, 0)
        best = min(best, (time.perf_counter() - start) / 20_000)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stamp = stamp_us()
    for d_model, layers in ((64, 2), (256, 4)):
        torch.manual_seed(0)
        model = models.build("transformer", vocab_size=2048, d_model=d_model, n_layers=layers,
                             max_seq_len=32 + args.new_tokens).eval()
        prompt = torch.randint(0, 2048, (1, 32), generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {"stamped": [], "silent": []}
        with torch.no_grad():
            for kind in (Recorder, Silent):  # warm-up
                fastest_call_s(model, prompt, args.new_tokens, kind)
            for i in range(args.rounds):  # alternated, the order flipped every round
                order = (Recorder, Silent) if i % 2 == 0 else (Silent, Recorder)
                for kind in order:
                    times["stamped" if kind is Recorder else "silent"].append(
                        fastest_call_s(model, prompt, args.new_tokens, kind))
        stamped, silent = min(times["stamped"]), min(times["silent"])
        print(f"d_model {d_model}, {layers} layers, {args.new_tokens} tokens: stamped {stamped * 1e3:.2f} ms, "
              f"silent {silent * 1e3:.2f} ms, ratio {stamped / silent:.3f} "
              f"({(stamped - silent) / args.new_tokens * 1e6:+.1f} us per token); one stamp {stamp:.2f} us = "
              f"{stamp / (silent / args.new_tokens * 1e6):.2%} of a decode step")


if __name__ == "__main__":
    main()
