"""`env`: the environment a run here would record (env.json)."""
from __future__ import annotations

import argparse
import json

import torch

from harness import env

NAME = "env"
HELP = "print the environment a run here records (device, versions, CPU, git commit)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")


def main(args: argparse.Namespace) -> int:
    print(json.dumps(env.collect(args.device), indent=2, default=str))
    return 0
