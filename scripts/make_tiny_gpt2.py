"""Write a small GPT-2 checkpoint folder that `pretrained` and `transformers` both load.

    python scripts/make_tiny_gpt2.py                       # results/cache/tiny_gpt2 (suites/decoding_hf.yaml)
    python scripts/make_tiny_gpt2.py --out DIR --d-model 256 --layers 4 --vocab 2048

config.json + model.safetensors (seeded random weights, written by
impls.models.pretrained.save_gpt2) and tokenizer.json: a byte-level BPE of the
checkpoint's vocabulary trained on the corpus's training split, so `prompt: corpus`
feeds real text in the checkpoint's own ids. The shape defaults to the one the
issue compared with optimum-benchmark: 4 layers, d 256, vocab 2048.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's harness and impls

from harness.quality import corpus  # noqa: E402
from impls.models import pretrained  # noqa: E402
from impls.models.lm import LanguageModel  # noqa: E402
from impls.tokenizers.bpe import BPETokenizer  # noqa: E402


def make(folder: str | Path, d_model: int = 256, layers: int = 4, heads: int = 4, vocab: int = 2048,
         positions: int = 512, seed: int = 0) -> Path:
    """The checkpoint folder, written (overwritten) at `folder`."""
    folder = Path(folder)
    config = {"n_embd": d_model, "n_layer": layers, "n_head": heads, "vocab_size": vocab, "n_positions": positions}
    torch.manual_seed(seed)
    pretrained.save_gpt2(LanguageModel(pretrained.gpt2_config(config)), folder)
    written = json.loads((folder / "config.json").read_text())
    # ids inside the vocabulary (GPT-2's default 50256 is not); decoding never stops at EOS anyway
    written.update(bos_token_id=0, eos_token_id=0)
    (folder / "config.json").write_text(json.dumps(written, indent=2))
    text = corpus.load()
    BPETokenizer.fit(text.decode(text.train), vocab).save(str(folder / "tokenizer.json"))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/cache/tiny_gpt2")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--positions", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = make(args.out, args.d_model, args.layers, args.heads, args.vocab, args.positions, args.seed)
    print(f"wrote {folder}/: config.json, model.safetensors, tokenizer.json")


if __name__ == "__main__":
    main()
