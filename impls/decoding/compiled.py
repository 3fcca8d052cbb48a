"""A compiled one-token step: torch.compile of the model's `step` over a static KV cache.

As gpt-fast's `decode_one_token`: the decode loop stays in Python, and the step it
calls for every token (embedding, every block, the head) is one compiled graph.
Positions are tensors throughout (LMState.position, StaticKVCache.position) and a
static cache's buffers never change shape, so one graph serves every position:
inductor's C++ code on a CPU, and on a GPU a CUDA graph replayed for each token
(mode="reduce-overhead"), which removes the per-kernel launch cost that bounds a
batch-1 decode step there. The first call compiles (tens of seconds on a small CPU);
the harness times it apart, as every first call.

A recurrent model's state is plain tensors and compiles as it is. A KV cache that
grows ("grow", "window") would change shape every token, so a compiled session
asks for cache="static".
"""
from __future__ import annotations

from functools import cache
from typing import Any, Callable

import torch

from impls.mixers.kv_cache import StaticKVCache


def decode_one_token(model: Any, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """token (B,) long -> logits (B, V) and the new state: the function that is compiled."""
    return model.step(token, state)


# Each model shape, batch and cache length is its own static graph, and a benchmark
# process decodes many: past torch's default of 8 graphs per function it would quietly
# run the step uncompiled while the record still says compiled.
RECOMPILE_LIMIT = 64


@cache
def _compiled(device_type: str) -> Callable[[Any, torch.Tensor, Any], tuple[torch.Tensor, Any]]:
    """decode_one_token compiled for a device type; one wrapper per process, so the graphs
    compiled for one model are found again by the next generate call."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    mode = "reduce-overhead" if device_type == "cuda" else None  # CUDA graphs on a GPU
    return torch.compile(decode_one_token, mode=mode, dynamic=False)


def compiled_step(model: Any, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
    """decode_one_token, compiled. On a GPU the static caches' buffers and positions are
    marked as living at fixed addresses (a CUDA graph then reads and writes them where they
    are instead of copying them in), and what the graph returns is copied out (its output
    buffers are overwritten by the next replay)."""
    token = token.contiguous()  # a beam's tokens come strided: another stride, another graph
    if token.device.type != "cuda":
        return _compiled(token.device.type)(model, token, state)
    for layer in state if isinstance(state, list) else ():
        if isinstance(layer, StaticKVCache) and layer.k is not None:
            for tensor in (layer.k, layer.v, layer.position):
                torch._dynamo.mark_static_address(tensor)
    logits, state = _compiled("cuda")(model, token, state)
    if isinstance(getattr(state, "position", None), torch.Tensor):
        state.position = state.position.clone()
    return logits.clone(), state
