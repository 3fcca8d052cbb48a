"""Print the decode-loop overhead figure of issue 6: tokens/s of `generate` greedy over a
bare `model.step` loop, per architecture (>= 0.9 is the target), timed in alternation and
compared by fastest samples (load on a shared machine only adds time).

    python scripts/decode_loop_overhead.py [--new-tokens 128] [--models transformer gru mamba]
"""
from __future__ import annotations

import argparse

from harness import regression
from impls.decoding.overhead import decode_loop_overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["transformer", "gru", "lstm", "mamba", "s4d"])
    args = parser.parse_args()
    for name in args.models:
        ratio = decode_loop_overhead(name, args.new_tokens, regression.interleaved_fastest, rounds=args.rounds)
        print(f"{name:12s} generate / bare step loop tokens/s = {ratio:.3f}")


if __name__ == "__main__":
    main()
