"""A bidirectional Transformer encoder with a classification head (family "encoder").

The model of Long Range Arena's efficiency table (lra_benchmarks/models/*: byte embedding,
sinusoidal positions, pre-norm blocks of self-attention and an MLP, a final LayerNorm, the
first position pooled, a two-layer ReLU head) and, at BERT's sizes, of BERT-style sequence
classifiers. Any registered attention impl runs in every layer, non-causal, with its own
params (`attention`, `attention_params`); LRA's default sizes are the preset's defaults.

    forward(tokens (B, N)) -> logits (B, num_classes)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from impls import registry
from impls.positional.sinusoidal import sinusoidal_table

LRA = {"attention": "naive", "attention_params": {}, "heads": 4, "mlp_dim": 1024, "num_classes": 2}


@dataclass
class EncoderConfig:
    vocab_size: int = 256
    d_model: int = 256
    n_layers: int = 4
    heads: int = 4
    mlp_dim: int = 1024
    num_classes: int = 2
    max_seq_len: int = 4096
    attention: str = "naive"
    attention_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} does not split into {self.heads} heads")

    def build(self) -> "EncoderClassifier":
        return EncoderClassifier(self)


class SelfAttention(nn.Module):
    """Non-causal multi-head self-attention over a registered attention impl."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.heads, self.head_dim = config.heads, config.d_model // config.heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)  # LRA's q/k/v: no bias
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)
        self.attention = registry.get("attention", config.attention).fn
        self.attention_params = dict(config.attention_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, d = x.shape
        q, k, v = self.qkv(x).view(batch, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, N, Dh)
        y = self.attention(q, k, v, causal=False, **self.attention_params)  # (B, H, N, Dh)
        return self.out(y.transpose(1, 2).reshape(batch, n, d))


class EncoderBlock(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.mlp_dim), nn.GELU(),
                                 nn.Linear(config.mlp_dim, config.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EncoderClassifier(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.register_buffer("positions", sinusoidal_table(torch.arange(config.max_seq_len), config.d_model),
                             persistent=False)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        # LRA's classifier_head: pooled -> Dense(mlp_dim) -> ReLU -> Dense(classes)
        self.head = nn.Sequential(nn.Linear(config.d_model, config.mlp_dim), nn.ReLU(),
                                  nn.Linear(config.mlp_dim, config.num_classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, N) -> logits (B, num_classes), pooled at position 0 (LRA's "CLS" pooling
        prepends a learned token there; position 0 plays it, so N stays a block multiple)."""
        n = tokens.shape[1]
        if n > self.config.max_seq_len:
            raise ValueError(f"{n} tokens exceed max_seq_len={self.config.max_seq_len}")
        x = self.embed(tokens) + self.positions[:n].to(self.embed.weight.dtype)  # (B, N, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def with_attention(config: EncoderConfig, attention: str, attention_params: dict[str, Any]) -> EncoderConfig:
    """The same model with another attention impl (a reference, for the correctness check)."""
    return replace(config, attention=attention, attention_params=attention_params)


@registry.register("encoder", "encoder", params=LRA,
                   doc="bidirectional Transformer encoder + classification head (LRA's model; BERT-style)")
def encoder(vocab_size: int = 256, d_model: int = 256, n_layers: int = 4, max_seq_len: int = 4096,
            **given: Any) -> EncoderConfig:
    values = {**LRA, **given}
    unknown = set(values) - set(LRA)
    if unknown:
        raise TypeError(f"encoder takes no parameter {sorted(unknown)}; valid: {sorted(LRA)}")
    registry.get("attention", values["attention"])  # an unknown name fails here, with the valid ones
    return EncoderConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, max_seq_len=max_seq_len,
                         **values)
