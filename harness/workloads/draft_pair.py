"""A target LM and a smaller draft trained on the same text, for speculative decoding.

Speculative decoding is only worth measuring with a draft that agrees with its
target, so both are trained briefly (seeded) on the character corpus
(harness.quality.corpus, pydoc topics by default) with the shared training
loop. The trained weights are cached under results/cache/ (safetensors),
keyed by everything that determines them, so a suite trains each pair once.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.quality import corpus, training
from impls import models

CACHE_DIR = Path("results/cache")


def trained(preset: str, size: dict[str, Any], steps: int, seed: int, seq_len: int = 64,
            batch: int = 16) -> tuple[nn.Module, corpus.CharCorpus]:
    """Preset `preset` built with `size` (d_model, n_layers, preset params) and trained
    `steps` steps on the char corpus; loaded from the cache when it was trained before."""
    text = corpus.load()
    kwargs = dict(size, vocab_size=text.vocab_size)
    key = json.dumps({"preset": preset, "size": kwargs, "steps": steps, "seed": seed, "seq_len": seq_len,
                      "batch": batch}, sort_keys=True)
    path = CACHE_DIR / f"{preset}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.safetensors"
    torch.manual_seed(seed)
    model = models.build(preset, **kwargs)
    if path.exists():
        model.load_state_dict(load_file(str(path)), strict=False)  # tied head: one tensor stored
        return model.eval(), text
    gen = torch.Generator().manual_seed(seed)

    def next_batch(step: int):
        inputs, targets = corpus.random_windows(text.train, batch, seq_len, gen)
        return inputs, targets, None

    training.train(model, next_batch, training.Budget(steps=steps, lr=3e-3, warmup_steps=min(20, steps)))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")  # a concurrent worker never reads half a file
    save_file({k: v.contiguous() for k, v in _untied(model).items()}, str(partial))
    os.replace(partial, path)
    return model.eval(), text


def _untied(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with each shared tensor stored once (safetensors refuses aliases)."""
    seen, out = set(), {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            out[name] = tensor
    return out
