"""Decoder-only language model: embedding, optional absolute positions, N blocks
of (mixer + ffn) with pre- or post-norm LayerNorm, final norm, tied head.

Any registered mixer plugs in, so the same model is a Transformer, an LSTM LM,
a Mamba LM... Relative positions (rope, alibi) live inside the attention mixer:
the model passes `positional` to a mixer that declares that parameter, and adds
absolute positions (sinusoidal, learned) to the embedding itself. Recurrent and
SSM mixers see order by construction, so rope/alibi mean nothing to them and
are not applied.

    forward(tokens (B, T)) -> logits (B, T, V)
    init_state(batch, max_len) -> LMState (a list of per-layer mixer states)
    prefill(tokens (B, T), state, last=None) -> (logits (B, T or last, V), state)
    step(token (B,), state) -> (logits (B, V), state)
"""
from __future__ import annotations

import inspect

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from impls import registry
from impls.positional import ABSOLUTE, POSITIONALS, RELATIVE



@dataclass
class LMConfig:
    vocab_size: int
    d_model: int
    n_layers: int
    mixer: str = "attention"
    mixer_params: dict[str, Any] = field(default_factory=dict)
    ffn: str = "mlp"
    ffn_params: dict[str, Any] = field(default_factory=dict)
    positional: str = "rope"
    norm: Literal["pre", "post"] = "pre"
    max_seq_len: int = 2048
    tie_weights: bool = True
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.positional not in POSITIONALS:
            raise ValueError(f"positional '{self.positional}' unknown; valid: {', '.join(POSITIONALS)}")
        if self.norm not in ("pre", "post"):
            raise ValueError(f"norm '{self.norm}' unknown; valid: pre, post")

    def build(self) -> "LanguageModel":
        return LanguageModel(self)


class LMState(list):
    """Per-layer mixer states, plus the number of tokens already consumed (`position`),
    which absolute positional encodings need: a 0-d long tensor, so that a compiled step
    reads it as data rather than compiling again for every position (an int works too)."""

    position: torch.Tensor | int = 0


def mixer_kwargs(config: LMConfig) -> dict[str, Any]:
    """The mixer's params, with `positional` (and `max_len`) added when the mixer takes them (attention)."""
    params = dict(config.mixer_params)
    accepted = registry.get("mixer", config.mixer).params
    if "positional" in accepted:
        params.setdefault("positional", config.positional if config.positional in RELATIVE else "none")
    if "max_len" in accepted:
        params.setdefault("max_len", config.max_seq_len)
    return params


class Block(nn.Module):
    """x + mixer(norm(x)), then x + ffn(norm(x)) (pre-norm), or norm(x + mixer(x)), norm(x + ffn(x)) (post-norm)."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.pre = config.norm == "pre"
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mixer = registry.get("mixer", config.mixer).fn(config.d_model, **mixer_kwargs(config))
        # ffn="none": a block of the mixer alone (Mamba's blocks carry their own expansion).
        has_ffn = config.ffn != "none"
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps) if has_ffn else None
        self.ffn = registry.get("ffn", config.ffn).fn(config.d_model, **config.ffn_params) if has_ffn else None

    def around(self, x: torch.Tensor, mix) -> tuple[torch.Tensor, Any]:
        """The block (norms, residuals, ffn) around `mix` (x -> (y, state)); x (B, T, D).
        Public so a server can run its own attention inside a block (impls/serving)."""
        if self.pre:
            y, state = mix(self.norm1(x))
            return self._ffn(x + y), state
        y, state = mix(x)
        return self._ffn(self.norm1(x + y)), state

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        if self.ffn is None:
            return x
        return x + self.ffn(self.norm2(x)) if self.pre else self.norm2(x + self.ffn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.around(x, lambda h: (self.mixer(h), None))[0]

    def prefill(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.around(x, lambda h: self.mixer.prefill(h, state))

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """x_t (B, D): the mixer's own step; the ffn sees (B, 1, D) like in forward."""
        def mix(h):
            y, new = self.mixer.step(h[:, 0], state)
            return y[:, None], new

        y, state = self.around(x_t[:, None], mix)
        return y[:, 0], state


def embed_init(embed: nn.Embedding, positional: str) -> float:
    """Initialise `embed` and return the factor its output is multiplied by.

    GPT-2 style (std 0.02, factor 1) everywhere but under fixed sinusoids, whose
    unit amplitude would drown such small token vectors: there, as in Vaswani et
    al., std d^-0.5 and factor sqrt(d), so tokens and positions have similar size."""
    d = embed.embedding_dim
    if positional == "sinusoidal":
        nn.init.normal_(embed.weight, std=d ** -0.5)
        return d ** 0.5
    nn.init.normal_(embed.weight, std=0.02)
    return 1.0


class LanguageModel(nn.Module):
    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.positional = (registry.get("positional", config.positional).fn(config.d_model, config.max_seq_len)
                           if config.positional in ABSOLUTE else None)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        # Post-norm blocks already end in a LayerNorm; a final one is for pre-norm only.
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps) if config.norm == "pre" else nn.Identity()
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.embed_scale = embed_init(self.embed, config.positional)
        if config.tie_weights:
            self.head.weight = self.embed.weight

    def _embed(self, tokens: torch.Tensor, start: torch.Tensor | int) -> torch.Tensor:
        """tokens (B, T) at positions start.. -> (B, T, D)."""
        x = self.embed(tokens) * self.embed_scale
        if self.positional is not None:
            # Learned tables raise past max_seq_len; sinusoidal ones extrapolate.
            positions = start + torch.arange(tokens.shape[1], device=tokens.device)
            x = x + self.positional(positions).to(x.dtype)  # (T, D) broadcast over B
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) long -> logits (B, T, V)."""
        x = self._embed(tokens, 0)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def init_state(self, batch: int, max_len: int, cache: str = "grow", window: int | None = None) -> LMState:
        """One state per layer. `cache` ("grow" | "static" | "window", with `window`) is the
        KV cache kind of the attention layers; recurrent layers keep their constant-size state."""
        state = LMState(init_with_cache(block.mixer.init_state, batch, max_len, cache, window)
                        for block in self.blocks)
        state.position = torch.zeros((), dtype=torch.long, device=self.embed.weight.device)
        return state

    def prefill(self, tokens: torch.Tensor, state: LMState,
                last: int | None = None) -> tuple[torch.Tensor, LMState]:
        """tokens (B, T) continuing from `state` -> logits (B, T, V), the state after them.
        `last`: logits of the last `last` positions only, (B, last, V); the head, a step's
        largest matmul at a large vocabulary, then runs on those alone."""
        x = self._embed(tokens, state.position)
        new = LMState()
        for block, layer_state in zip(self.blocks, state):
            x, layer_state = block.prefill(x, layer_state)
            new.append(layer_state)
        new.position = state.position + tokens.shape[1]
        if last is not None:
            x = x[:, -last:]
        return self.head(self.norm(x)), new

    def step(self, token: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        """token (B,) long -> logits (B, V) for the next token, and the new state."""
        x = self._embed(token[:, None], state.position)[:, 0]
        new = LMState()
        for block, layer_state in zip(self.blocks, state):
            x, layer_state = block.step(x, layer_state)
            new.append(layer_state)
        new.position = state.position + 1
        return self.head(self.norm(x)), new

    def aux_loss(self) -> torch.Tensor | float:
        """Sum of the ffn auxiliary losses of the last forward (MoE load balancing), else 0."""
        total: torch.Tensor | float = 0.0
        for block in self.blocks:
            aux = getattr(block.ffn, "aux_loss", None)
            if aux is not None:
                total = total + aux
        return total


def taken_options(fn: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The `options` that `fn` has parameters for."""
    names = inspect.signature(fn).parameters
    return {k: v for k, v in options.items() if k in names}


def init_with_cache(init_state: Any, batch: int, max_len: int, cache: str, window: int | None) -> Any:
    """`init_state(batch, max_len)` with the cache kind (and window) where it takes them; a
    recurrent model or mixer takes neither and keeps its constant-size state."""
    kv = {"cache": cache} | ({"window": window} if window is not None else {})
    return init_state(batch, max_len, **taken_options(init_state, kv))


def param_count(model: nn.Module) -> int:
    """Parameters, counting a tied (shared) tensor once."""
    return sum(p.numel() for p in model.parameters())
