"""transformers' own model and `generate`, from a local checkpoint folder: what users deploy.

The preset "transformers" (params: checkpoint) loads the folder with
AutoModelForCausalLM, the same folders "pretrained" loads into seqbench's own
LanguageModel, and decodes with transformers' `generate` (greedy, sampling, beam).
It is the baseline every architecture and decode mode is compared beside, and the
reference pretrained's tokens must equal.

`TransformersLM` gives the library's model the interface the workloads ask of a
language model: `forward(tokens) -> logits`, and `init_state` / `prefill` / `step`
over transformers' own KV cache (so the workloads' incremental-vs-full checks apply to
it unchanged). `decode` runs transformers' `generate` with a streamer that stamps each
new token, as seqbench's strategies do (impls.decoding.stats.Recorder): transformers
refuses a streamer with beam search, so beam has total time and tokens/s only.
transformers is imported on first use: without it the preset is skipped with the reason.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from impls import registry, requirements
from impls.decoding.loop import Generation
from impls.decoding.stats import Recorder

STRATEGIES = ("greedy", "sampling", "beam")
CACHES = {"grow": {}, "static": {"cache_implementation": "static"}, "none": {"use_cache": False}}


@dataclass(frozen=True)
class HFConfig:
    """The sizes the workloads read from a model's config (FLOP counts, limits)."""

    vocab_size: int
    d_model: int
    n_layers: int
    max_seq_len: int
    mixer: str = "attention"  # a transformers causal LM: attention blocks (for the FLOP count)

    @classmethod
    def of(cls, config: dict[str, Any]) -> HFConfig:
        """From config.json's keys (GPT-2's names, or the newer common ones)."""
        def first(*keys: str) -> int:
            for key in keys:
                if config.get(key) is not None:
                    return int(config[key])
            raise KeyError(f"config.json has none of {', '.join(keys)}")

        return cls(vocab_size=first("vocab_size"), d_model=first("n_embd", "hidden_size"),
                   n_layers=first("n_layer", "num_hidden_layers"),
                   max_seq_len=first("n_positions", "max_position_embeddings"))


class TransformersLM(nn.Module):
    def __init__(self, model: nn.Module, config: HFConfig):
        super().__init__()
        self.hf = model
        self.config = config
        # newer transformers name the forward's cache argument `cache` (past_key_values deprecated)
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) of tokens (B, T) long."""
        return self.hf(tokens, use_cache=False).logits

    def aux_loss(self) -> torch.Tensor:
        """No auxiliary loss (the workloads add a MoE model's balance loss here)."""
        return torch.zeros(())

    def init_state(self, batch: int, max_len: int) -> None:
        return None  # transformers makes its cache at the first prefill

    def prefill(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) of tokens (B, T) after those in `state` (transformers' cache)."""
        out = self.hf(tokens, use_cache=True, **{self._cache_arg: state})
        cache = getattr(out, "cache", None)
        return out.logits, (out.past_key_values if cache is None else cache)

    def step(self, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of one token per row, token (B,) long."""
        logits, state = self.prefill(token[:, None], state)
        return logits[:, -1], state

    @torch.no_grad()
    def decode(self, prompt: torch.Tensor, max_new_tokens: int, strategy: str = "greedy", cache: str = "grow",
               width: int = 4, alpha: float = 0.0, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, seed: int = 0, **_: Any) -> Generation:
        """transformers' generate: `max_new_tokens` tokens after `prompt` (B, T), never stopping
        early (no EOS, as seqbench's strategies), timestamped per token where it streams."""
        reason = refusal(strategy, cache)
        if reason:
            raise ValueError(reason)
        recorder = Recorder(prompt.shape[0])
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "eos_token_id": None, "pad_token_id": 0,
                                   **CACHES[cache]}
        if strategy == "beam":
            options.update(num_beams=width, do_sample=False, length_penalty=alpha)
        elif strategy == "sampling" and temperature > 0:
            options.update(do_sample=True, temperature=temperature, top_k=top_k or 0, top_p=top_p or 1.0)
            torch.manual_seed(seed)
        else:  # greedy, or sampling at temperature 0 (seqbench's sampling is greedy there too)
            options.update(do_sample=False, num_beams=1)
        streamer = None if strategy == "beam" else _Clock(recorder, prompt.shape[1])
        out = self.hf.generate(prompt, attention_mask=torch.ones_like(prompt), streamer=streamer, **options)
        tokens = out[:, prompt.shape[1]:]
        return Generation(tokens, recorder.finish(tokens))


class _Clock:
    """A streamer for transformers' generate: it is handed the prompt, then each new token
    (already on the host), and stamps every token after the prompt."""

    def __init__(self, recorder: Recorder, prompt_len: int):
        self.recorder, self.length, self.prompt_seen = recorder, prompt_len, False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.length += 1
        self.recorder.emitted(1, self.length, None)

    def end(self) -> None:
        pass


def refusal(strategy: str, cache: str) -> str | None:
    """Why transformers' generate is not run for this decode mode (None: it is)."""
    if strategy not in STRATEGIES:
        return f"the transformers baseline decodes {', '.join(STRATEGIES)}, not {strategy}"
    if cache not in CACHES:
        return f"the transformers baseline runs cache {', '.join(CACHES)}, not {cache}"
    return None


@dataclass
class TransformersCheckpoint:
    """A checkpoint folder for transformers: build() loads it with AutoModelForCausalLM."""

    folder: str

    def build(self) -> TransformersLM:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging

        logging.disable_progress_bar()  # a bar per load would fill the run's console
        model = AutoModelForCausalLM.from_pretrained(self.folder, dtype=torch.float32).eval()
        return TransformersLM(model, self.lm_config())

    def lm_config(self) -> HFConfig:
        """The sizes, read from config.json without the weights. The workloads ask for them
        before they time the load, so transformers and the model's module are imported here:
        a server imports them once, and their seconds of import (3 s on a loaded 2-core CPU)
        are not the checkpoint's load time."""
        path = Path(self.folder) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"model transformers: {path} does not exist (params: checkpoint: a folder "
                                    "with config.json and the weights)")
        from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

        MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(self.folder))]  # imports its module
        return HFConfig.of(json.loads(path.read_text()))


@registry.register("model", "transformers", params={"checkpoint": None}, fixed_size=True,
                   requires=(requirements.module("transformers"),),
                   doc="transformers' AutoModelForCausalLM and generate on a local checkpoint "
                       "(params: checkpoint: path/to/folder); the baseline")
def transformers_model(checkpoint: str | None = None) -> TransformersCheckpoint:
    """The checkpoint in folder `checkpoint` (relative to where the harness runs)."""
    if not checkpoint:
        raise ValueError("model transformers needs params: {checkpoint: path/to/folder} "
                         "(config.json + model.safetensors or pytorch_model.bin)")
    return TransformersCheckpoint(str(checkpoint))
