"""Encoder-decoder Transformer (Vaswani et al. 2017): a non-causal encoder, a
decoder of causal self-attention + cross-attention + ffn, pre- or post-norm.

Every attention is `config.attention`, a registered attention impl: encoder
self-attention and cross-attention call it (`fn(q, k, v, causal=False)`, queries
N != keys M for cross-attention); the decoder's self-attention is the registered
"attention" mixer over it, so its KV cache is the mixer's state. An impl that
does not define one of these roles (a self-attention-only pattern as
cross-attention, linformer as the causal decoder) raises impls.errors.Unsupported
when the model is built. `encode` runs the encoder once and caches every layer's
cross-attention keys and values; `decode_step` then costs one token.

Positions: "sinusoidal" and "learned" are added to both embeddings; "rope" and
"alibi" act inside the encoder's and the decoder's self-attention (ALiBi
non-causal in the encoder: -slope * |i - j|), and cross-attention takes none,
as usual: source and target positions are not comparable.

    forward(src (B, S), tgt_in (B, L)) -> logits (B, L, V_tgt)
    encode(src) -> Memory
    init_state(batch, max_len) -> DecoderState
    decode_step(token (B,), memory, state) -> (logits (B, V_tgt), state)

Source padding is attended like any token (the attention interface has no key
mask); sources are padded to a fixed width so a sequence's encoding never
depends on its batch-mates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from impls import registry
from impls.errors import Unsupported
from impls.mixers.score_bias import BIASED, require_bias
from impls.models.lm import LMState, embed_init
from impls.models.presets import parts_available
from impls.positional import ABSOLUTE, RELATIVE, alibi
from impls.positional.rope import apply_rope

POSITIONALS = ABSOLUTE + RELATIVE  # an encoder-decoder always has positions


@dataclass
class Seq2SeqConfig:
    src_vocab: int
    tgt_vocab: int
    d_model: int
    n_layers: int  # on each side
    heads: int = 4
    ffn: str = "mlp"
    ffn_params: dict[str, Any] = field(default_factory=dict)
    positional: Literal["sinusoidal", "learned", "rope", "alibi"] = "sinusoidal"
    norm: Literal["pre", "post"] = "pre"
    attention: str = "sdpa_math"  # the registered attention impl of every attention layer
    max_seq_len: int = 512
    tie_weights: bool = True  # decoder embedding = output head

    def __post_init__(self):
        if self.positional not in POSITIONALS:
            raise ValueError(f"seq2seq positional '{self.positional}' unknown; valid: {', '.join(POSITIONALS)}")

    def build(self) -> "Seq2SeqTransformer":
        return Seq2SeqTransformer(self)


class Attention(nn.Module):
    """Non-causal multi-head attention of x (B, N, D) over memory (B, M, D): the encoder's
    self-attention (memory is x; `positional` "rope" or "alibi" acts here) or cross-attention
    (cross=True: M may differ from N, no positions)."""

    def __init__(self, d_model: int, heads: int, impl: str, cross: bool, positional: str = "none"):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        if cross and positional != "none":
            raise ValueError("cross-attention takes no positional encoding")
        self.heads, self.positional, self.impl = heads, positional, impl
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        spec = registry.get("attention", impl)
        self.fn = spec.fn
        role = "cross-attention" if cross else "encoder self-attention"
        reason = registry.refusal(spec, causal=False, seq_len=2, kv_len=3 if cross else 2, heads=heads, kv_heads=heads,
                         head_dim=d_model // heads)
        if reason:
            raise Unsupported(f"attention impl '{impl}' cannot be the {role}: {reason}")
        if positional == "alibi":
            require_bias(impl)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, H, T, Dh)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, M, D) -> k, v (B, H, M, Dh): computed once per source, then cached."""
        k, v = self.key_value(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def attend(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        q, (k, v) = self._split(self.query(x)), kv  # (B, H, N, Dh), (B, H, M, Dh)
        positions = torch.arange(q.shape[2], device=q.device)  # self-attention: N == M, from 0
        if self.positional == "rope":
            q, k = apply_rope(q, positions), apply_rope(k, positions)
        if self.positional == "alibi":
            keep = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device)
            o = BIASED[self.impl](q, k, v, keep, alibi.bias(self.heads, positions, positions, symmetric=True))
        else:
            o = self.fn(q, k, v, causal=False)  # (B, H, N, Dh)
        return self.out(o.transpose(1, 2).flatten(2))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.attend(x, self.keys_values(memory))


def _sublayer(x: torch.Tensor, norm: nn.LayerNorm, pre: bool, fn) -> torch.Tensor:
    """x + fn(norm(x)) (pre-norm) or norm(x + fn(x)) (post-norm)."""
    return x + fn(norm(x)) if pre else norm(x + fn(x))


class EncoderLayer(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.pre = config.norm == "pre"
        self.norm1, self.norm2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        relative = config.positional if config.positional in RELATIVE else "none"
        self.attn = Attention(config.d_model, config.heads, config.attention, cross=False, positional=relative)
        self.ffn = registry.get("ffn", config.ffn).fn(config.d_model, **config.ffn_params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _sublayer(x, self.norm1, self.pre, lambda h: self.attn(h, h))
        return _sublayer(x, self.norm2, self.pre, self.ffn)


class DecoderLayer(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.pre = config.norm == "pre"
        self.norms = nn.ModuleList(nn.LayerNorm(config.d_model) for _ in range(3))
        relative = config.positional if config.positional in RELATIVE else "none"
        self.self_attn = registry.get("mixer", "attention").fn(
            config.d_model, attention=config.attention, heads=config.heads, positional=relative,
            max_len=config.max_seq_len)
        self.cross = Attention(config.d_model, config.heads, config.attention, cross=True)
        self.ffn = registry.get("ffn", config.ffn).fn(config.d_model, **config.ffn_params)

    def prefill(self, x: torch.Tensor, cross_kv, state: Any) -> tuple[torch.Tensor, Any]:
        """x (B, L, D) new target positions continuing from the self-attention `state`."""
        out: dict[str, Any] = {}

        def mix(h):
            y, out["state"] = self.self_attn.prefill(h, state)
            return y

        x = _sublayer(x, self.norms[0], self.pre, mix)
        x = _sublayer(x, self.norms[1], self.pre, lambda h: self.cross.attend(h, cross_kv))
        return _sublayer(x, self.norms[2], self.pre, self.ffn), out["state"]


@dataclass
class Memory:
    """The encoder's output (B, S, D) and each decoder layer's cross-attention (k, v)."""

    output: torch.Tensor
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]


class Seq2SeqTransformer(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.src_embed = nn.Embedding(config.src_vocab, d)
        self.tgt_embed = nn.Embedding(config.tgt_vocab, d)
        self.positional = (registry.get("positional", config.positional).fn(d, config.max_seq_len)
                           if config.positional in ABSOLUTE else None)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layers))
        pre = config.norm == "pre"
        self.enc_norm = nn.LayerNorm(d) if pre else nn.Identity()
        self.dec_norm = nn.LayerNorm(d) if pre else nn.Identity()
        self.head = nn.Linear(d, config.tgt_vocab, bias=False)
        self.embed_scale = embed_init(self.src_embed, config.positional)
        embed_init(self.tgt_embed, config.positional)
        if config.tie_weights:
            self.head.weight = self.tgt_embed.weight

    def _embed(self, embed: nn.Embedding, tokens: torch.Tensor, start: int) -> torch.Tensor:
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        x = embed(tokens) * self.embed_scale
        return x if self.positional is None else x + self.positional(positions).to(x.dtype)

    def encode(self, src: torch.Tensor) -> Memory:
        """src (B, S) -> Memory with the encoder output and every layer's cross (k, v)."""
        x = self._embed(self.src_embed, src, 0)
        for layer in self.encoder:
            x = layer(x)
        x = self.enc_norm(x)
        return Memory(output=x, cross_kv=[layer.cross.keys_values(x) for layer in self.decoder])

    def init_state(self, batch: int, max_len: int) -> LMState:
        state = LMState(layer.self_attn.init_state(batch, max_len) for layer in self.decoder)
        state.position = 0
        return state

    def decode(self, tgt: torch.Tensor, memory: Memory, state: LMState) -> tuple[torch.Tensor, LMState]:
        """tgt (B, L) continuing from `state` -> logits (B, L, V), new state."""
        x = self._embed(self.tgt_embed, tgt, state.position)
        new = LMState()
        for layer, kv, layer_state in zip(self.decoder, memory.cross_kv, state):
            x, layer_state = layer.prefill(x, kv, layer_state)
            new.append(layer_state)
        new.position = state.position + tgt.shape[1]
        return self.head(self.dec_norm(x)), new

    def decode_step(self, token: torch.Tensor, memory: Memory, state: LMState) -> tuple[torch.Tensor, LMState]:
        """token (B,) -> logits (B, V) for the next target token, new state."""
        logits, state = self.decode(token[:, None], memory, state)
        return logits[:, 0], state

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) for targets given as decoder inputs tgt_in (B, L)."""
        state = self.init_state(src.shape[0], tgt_in.shape[1])
        return self.decode(tgt_in, self.encode(src), state)[0]


@registry.register("seq2seq", "transformer",
                   params={"heads": 4, "norm": "pre", "positional": "sinusoidal", "attention": "sdpa_math"},
                   doc="encoder-decoder Transformer, every attention through the attention interface",
                   requires=(parts_available(("mixer", "attention"), ("ffn", "mlp"), ("attention", "sdpa_math")),))
def transformer(src_vocab: int = 16, tgt_vocab: int = 64, d_model: int = 128, n_layers: int = 2,
                max_seq_len: int = 512, heads: int = 4, norm: str = "pre",
                positional: str = "sinusoidal", attention: str = "sdpa_math") -> Seq2SeqConfig:
    return Seq2SeqConfig(src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=d_model, n_layers=n_layers,
                         heads=heads, norm=norm, positional=positional, max_seq_len=max_seq_len,
                         attention=attention)
