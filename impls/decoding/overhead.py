"""What `generate` costs on top of the model: its tokens/s over a bare greedy loop of
`model.prefill` + `model.step` calls on the same model and prompt (1.0 = no overhead)."""
from __future__ import annotations

from typing import Callable

import torch

from impls import models
from impls.decoding import generate
from impls.models.lm import init_with_cache


def bare_greedy(model, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """The least a greedy decoder can do: prefill, then argmax and step, over the cache
    `generate` uses by default (a static one)."""
    state = init_with_cache(model.init_state, prompt.shape[0], prompt.shape[1] + new_tokens, "static", None)
    logits, state = model.prefill(prompt, state)
    token = logits[:, -1].argmax(-1)
    out = [token]
    for _ in range(new_tokens - 1):
        logits, state = model.step(token, state)
        token = logits.argmax(-1)
        out.append(token)
    return torch.stack(out, 1)


@torch.no_grad()
def decode_loop_overhead(name: str, new_tokens: int, timing: Callable, prompt_len: int = 16,
                         batch: int = 1, rounds: int = 5, **size) -> float:
    """tokens/s of `generate` greedy over the bare loop's, for preset `name`; `timing` maps
    {label: callable} to ms per call (harness.regression.interleaved_fastest)."""
    torch.manual_seed(0)
    model = models.build(name, **({"d_model": 128, "n_layers": 2} | size)).eval()
    prompt = torch.randint(0, model.embed.num_embeddings, (batch, prompt_len))
    bare = bare_greedy(model, prompt, new_tokens)
    if not torch.equal(bare, generate(model, prompt, new_tokens).tokens):
        raise AssertionError(f"{name}: generate greedy and the bare loop chose different tokens")
    medians = timing({"generate": lambda: generate(model, prompt, new_tokens),
                      "bare": lambda: bare_greedy(model, prompt, new_tokens)}, rounds=rounds)
    return medians["bare"] / medians["generate"]
