"""Pruning a trained LM: three kinds, which differ in what the kernel then does.

- magnitude: unstructured, the smallest |w| of every linear weight (an embedding's tied head
  aside) set to zero
  (torch.nn.utils.prune.l1_unstructured, made permanent). The weights stay dense tensors,
  so the same dense matmul runs over the zeros: no faster, no smaller.
- structured: whole attention heads and FFN hidden channels removed (the smallest by L2
  norm of what they write to the residual stream), leaving a smaller dense model: faster
  and smaller, at a quality cost.
- two_four: 2:4 semi-structured sparsity (2 of every 4 consecutive weights kept, by
  magnitude); on a CUDA GPU with sparse tensor cores (sm_80+) the weights become
  torch.sparse's SparseSemiStructuredTensor, elsewhere there is no kernel (`two_four_refusal`).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from impls.ffn.mlp import MLP
from impls.mixers.attention import Attention


def block_linears(model: nn.Module) -> list[nn.Linear]:
    """The model's linear layers but a head that shares an embedding's weight (pruning it
    would prune the embedding)."""
    tied = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [m for m in model.modules() if isinstance(m, nn.Linear) and id(m.weight) not in tied]


def magnitude(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy with `sparsity` of each block linear weight zeroed, smallest |w| first (dense storage)."""
    pruned = copy.deepcopy(model)
    for linear in block_linears(pruned):
        prune.l1_unstructured(linear, "weight", amount=sparsity)
        prune.remove(linear, "weight")  # the mask applied for good: a plain dense weight with zeros
    return pruned


def zero_fraction(model: nn.Module) -> float:
    """Fraction of the block linear weights that are exactly zero."""
    weights = [linear.weight for linear in block_linears(model)]
    return sum(int((w == 0).sum()) for w in weights) / max(1, sum(w.numel() for w in weights))


# ---- structured -------------------------------------------------------------------------------

def _keep_largest(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Sorted indices of the round(len * (1 - fraction)) largest scores (at least one)."""
    keep = max(1, round(len(scores) * (1 - fraction)))
    return scores.topk(keep).indices.sort().values


def _linear_from(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    weight = linear.weight.detach()
    weight = weight if rows is None else weight[rows]
    weight = weight if cols is None else weight[:, cols]
    smaller = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    smaller.weight.data.copy_(weight)
    if linear.bias is not None:
        smaller.bias.data.copy_(linear.bias.detach() if rows is None else linear.bias.detach()[rows])
    return smaller.to(linear.weight.device)


def prune_heads(attention: Attention, fraction: float) -> None:
    """Remove `fraction` of the heads (in place), smallest L2 norm of their out_proj columns first."""
    if attention.kv_heads != attention.heads:
        raise ValueError("structured head pruning needs one KV head per query head (no GQA/MQA)")
    d = attention.head_dim
    scores = attention.out_proj.weight.detach().view(-1, attention.heads, d).pow(2).sum((0, 2))
    heads = _keep_largest(scores, fraction)
    dims = (heads[:, None] * d + torch.arange(d)).flatten()  # the kept heads' positions in q (and k, v)
    width = attention.heads * d
    qkv_rows = torch.cat([dims, width + dims, 2 * width + dims])
    attention.qkv_proj = _linear_from(attention.qkv_proj, rows=qkv_rows)
    attention.out_proj = _linear_from(attention.out_proj, cols=dims)
    attention.heads = attention.kv_heads = len(heads)


def prune_channels(mlp: MLP, fraction: float) -> None:
    """Remove `fraction` of the hidden channels (in place), smallest L2 norm of their down_proj column first."""
    scores = mlp.down.weight.detach().pow(2).sum(0)
    channels = _keep_largest(scores, fraction)
    up_rows = torch.cat([channels, mlp.hidden + channels]) if mlp.activation == "swiglu" else channels
    mlp.up = _linear_from(mlp.up, rows=up_rows)
    mlp.down = _linear_from(mlp.down, cols=channels)
    mlp.hidden = len(channels)


def structured(model: nn.Module, fraction: float) -> nn.Module:
    """A smaller dense copy: `fraction` of every attention layer's heads and of every MLP's
    hidden channels removed. ValueError when the model has neither (nothing to remove)."""
    pruned = copy.deepcopy(model)
    found = 0
    for block in pruned.blocks:
        if isinstance(block.mixer, Attention):
            prune_heads(block.mixer, fraction)
            found += 1
        if isinstance(block.ffn, MLP):
            prune_channels(block.ffn, fraction)
            found += 1
    if not found:
        raise ValueError("structured pruning removes attention heads and MLP channels; this model has neither")
    return pruned


# ---- 2:4 --------------------------------------------------------------------------------------

def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """bool mask (out, in) keeping the 2 largest |w| of every 4 consecutive inputs."""
    groups = weight.detach().abs().reshape(weight.shape[0], -1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, groups.topk(2, dim=-1).indices, True)
    return keep.reshape(weight.shape)


def two_four_refusal(device: torch.device | str) -> str | None:
    """Why 2:4 sparse kernels cannot run on `device` (None: they can)."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"2:4 semi-structured sparsity has a kernel on CUDA GPUs with sparse tensor cores only, not {device.type}"
    if torch.cuda.get_device_capability(device) < (8, 0):
        return "2:4 semi-structured sparsity needs sparse tensor cores (sm_80 or newer)"
    return None


def two_four(model: nn.Module) -> nn.Module:
    """A copy whose block linear weights are 2:4 sparse, stored as SparseSemiStructuredTensor
    (CUDA, fp16/bf16); `two_four_refusal` first."""
    from torch.sparse import to_sparse_semi_structured

    pruned = copy.deepcopy(model)
    for linear in block_linears(pruned):
        dense = linear.weight.detach() * two_four_mask(linear.weight)
        linear.weight = nn.Parameter(to_sparse_semi_structured(dense), requires_grad=False)
    return pruned
