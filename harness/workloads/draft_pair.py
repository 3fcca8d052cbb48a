"""A target LM and a smaller draft trained on the same text, for speculative decoding.

Speculative decoding is only worth measuring with a draft that agrees with its
target, so both are trained briefly (seeded) on the character corpus
(harness.quality.corpus, pydoc topics by default) with the shared training
loop. The trained weights are cached under results/cache/ (safetensors),
keyed by everything that determines them (the built model's whole config, the
training budget, the corpus' contents, the seed), so a suite trains each pair
once and a changed config never finds a stale file. A file is loaded strictly:
one that does not fit the model (a different layout written under the same
key, a truncated write) is retrained and overwritten, with a warning.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from harness.quality import corpus, training
from impls import models

CACHE_DIR = Path("results/cache")


def trained(preset: str, size: dict[str, Any], steps: int, seed: int, seq_len: int = 64,
            batch: int = 16) -> tuple[nn.Module, corpus.CharCorpus]:
    """Preset `preset` built with `size` (d_model, n_layers, preset params) and trained
    `steps` steps on the char corpus; loaded from the cache when it was trained before."""
    text = corpus.load()
    budget = training.Budget(steps=steps, lr=3e-3, warmup_steps=min(20, steps))
    model = _build(preset, size, text, seed)
    path = cache_path(preset, model, text, budget, seed, seq_len, batch)
    if path.exists():
        try:
            load_model(model, str(path), strict=True)
            return model.eval(), text
        except (RuntimeError, SafetensorError, OSError) as why:
            reason = str(why).strip().splitlines()[0]
            warnings.warn(f"{path}: does not fit {preset} ({reason}); retraining and overwriting it", stacklevel=2)
            model = _build(preset, size, text, seed)  # a failed load may have copied some tensors
    gen = torch.Generator().manual_seed(seed)

    def next_batch(step: int):
        inputs, targets = corpus.random_windows(text.train, batch, seq_len, gen)
        return inputs, targets, None

    training.train(model, next_batch, budget)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")  # a concurrent worker never reads half a file
    save_model(model, str(partial))  # stores a tied head once and restores the tie on load
    os.replace(partial, path)
    return model.eval(), text


def _build(preset: str, size: dict[str, Any], text: corpus.CharCorpus, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(preset, **dict(size, vocab_size=text.vocab_size))


def cache_path(preset: str, model: nn.Module, text: corpus.CharCorpus, budget: training.Budget, seed: int,
               seq_len: int, batch: int) -> Path:
    """results/cache/<preset>-<hash of everything the trained weights depend on>.safetensors"""
    config = model.config
    key = json.dumps({"preset": preset, "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config)
                      else repr(config), "budget": dataclasses.asdict(budget), "seed": seed, "seq_len": seq_len,
                      "batch": batch, "corpus": _fingerprint(text)}, sort_keys=True, default=str)
    return CACHE_DIR / f"{preset}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.safetensors"


def _fingerprint(text: corpus.CharCorpus) -> str:
    """A hash of the corpus itself: the default text comes from the running Python's pydoc."""
    digest = hashlib.sha1(text.chars.encode())
    for ids in (text.train, text.valid):
        digest.update(ids.numpy().tobytes())
    return digest.hexdigest()
