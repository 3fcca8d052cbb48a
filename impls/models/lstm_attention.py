"""LSTM encoder-decoder with additive attention (Bahdanau et al. 2015).

Encoder: a bidirectional LSTM, d_model/2 per direction, so memory h_j is (B, S, D).
Decoder, at each target step t with previous state s_{t-1}:

    e_tj = v . tanh(W s_{t-1} + U h_j)          additive score, (B, S)
    a_t  = softmax_j(e_tj);  c_t = sum_j a_tj h_j
    s_t  = LSTM([embed(y_{t-1}); c_t], s_{t-1})  (n_layers stacked cells)
    logits_t = W_o [s_t; c_t]

`encode` caches U h_j (the part of the score that depends only on the source),
so each `decode_step` costs O(S) instead of re-projecting the memory.
Teacher-forced `forward` is the same step in a loop, by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from impls import registry


@dataclass
class LSTMAttentionConfig:
    src_vocab: int
    tgt_vocab: int
    d_model: int
    n_layers: int = 1

    def __post_init__(self):
        if self.d_model % 2:
            raise ValueError(f"lstm_attention needs an even d_model (two directions), got {self.d_model}")

    def build(self) -> "LSTMAttention":
        return LSTMAttention(self)


@dataclass
class Memory:
    output: torch.Tensor  # h_j (B, S, D)
    keys: torch.Tensor  # U h_j (B, S, D), cached for every decoder step


class LSTMAttention(nn.Module):
    def __init__(self, config: LSTMAttentionConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.src_embed = nn.Embedding(config.src_vocab, d)
        self.tgt_embed = nn.Embedding(config.tgt_vocab, d)
        self.encoder = nn.LSTM(d, d // 2, num_layers=config.n_layers, batch_first=True, bidirectional=True)
        self.cells = nn.ModuleList(nn.LSTMCell(2 * d if i == 0 else d, d) for i in range(config.n_layers))
        self.query = nn.Linear(d, d, bias=False)  # W
        self.key = nn.Linear(d, d)  # U
        self.score = nn.Linear(d, 1, bias=False)  # v
        self.out = nn.Linear(2 * d, config.tgt_vocab)

    def encode(self, src: torch.Tensor) -> Memory:
        """src (B, S) -> Memory with h_j and the cached U h_j."""
        output, _ = self.encoder(self.src_embed(src))  # (B, S, D)
        return Memory(output=output, keys=self.key(output))

    def init_state(self, batch: int, max_len: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(h, c) per decoder layer, zeros (B, D); max_len is unused (no cache grows)."""
        p = self.out.weight
        zeros = torch.zeros(batch, self.config.d_model, device=p.device, dtype=p.dtype)
        return [(zeros, zeros.clone()) for _ in self.cells]

    def attend(self, s: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """s (B, D) decoder state -> context (B, D) and weights (B, S)."""
        scores = self.score(torch.tanh(self.query(s)[:, None] + memory.keys))[..., 0]  # (B, S)
        weights = torch.softmax(scores, dim=-1)
        return torch.einsum("bs,bsd->bd", weights, memory.output), weights

    def decode_step(self, token: torch.Tensor, memory: Memory, state: list) -> tuple[torch.Tensor, list]:
        """token (B,) = y_{t-1} -> logits (B, V) for y_t, and the new per-layer (h, c)."""
        context, _ = self.attend(state[-1][0], memory)
        x = torch.cat([self.tgt_embed(token), context], dim=-1)
        new = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new.append((h, c))
            x = h
        return self.out(torch.cat([x, context], dim=-1)), new

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, L, V) for decoder inputs tgt_in (B, L)."""
        memory = self.encode(src)
        state = self.init_state(src.shape[0])
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, state = self.decode_step(tgt_in[:, t], memory, state)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)


@registry.register("seq2seq", "lstm_attention", params={},
                   doc="bidirectional LSTM encoder, LSTM decoder with additive (Bahdanau) attention")
def lstm_attention(src_vocab: int = 16, tgt_vocab: int = 64, d_model: int = 128, n_layers: int = 1,
                   max_seq_len: int = 512) -> LSTMAttentionConfig:
    """max_seq_len is accepted for a uniform preset signature; recurrent models have no limit."""
    return LSTMAttentionConfig(src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=d_model, n_layers=n_layers)
