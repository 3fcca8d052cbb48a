"""Speculative decoding (Leviathan et al. 2023; Chen et al. 2023).

A small draft model proposes k tokens one at a time; the target scores all of
them in one call; each drafted token x_i is kept with probability
min(1, p_i(x_i) / q_i(x_i)); at the first rejection a token is drawn from
norm(max(0, p_i - q_i)); if all k are kept a bonus token comes from p_{k+1}.
The emitted tokens are distributed exactly as sampling from the target alone.
Under greedy (temperature 0) p and q are one-hot, so a drafted token is kept
iff it is the target's argmax: the output equals the target's greedy output.

Invariant between rounds: both sessions have processed every committed token
except the last one, `last`. A round feeds `last` plus the drafts, so each
round costs k draft calls and one target call of k + 1 tokens. After
rejection, both states are rolled back (KV caches truncated; recurrent states
restored from a snapshot).

Batches: the rows of a batch share one state length, so a round commits the
same number of tokens in every row: n = the fewest drafts any row accepted,
then one more token per row, which is that row's own token at position n
(its accepted draft there, or its residual / bonus draw where it stopped).
Each row's tokens are still distributed as the target's: cutting a row's
speculative output short at a point set by the other rows' independent draws
keeps every emitted token's law given its prefix. A batch pays for its least
lucky row (mean_accepted_length is what was committed; acceptance_rate is the
per-row rule's own rate; alpha is Leviathan et al.'s E[sum_x min(p, q)], the rate their
Theorem 3.8 takes).
"""
from __future__ import annotations

from typing import Any

import torch

from impls.decoding.sampling import filtered_probs, sample
from impls.decoding.session import Session
from impls.decoding.stats import Recorder


def decode(model: Any, prompt: torch.Tensor, max_new_tokens: int, recorder: Recorder,
           draft: Any = None, k: int = 4, cache: str = "static", window: int | None = None,
           temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
           seed: int = 0, compile: bool = False) -> torch.Tensor:
    """Tokens (B, max_new_tokens) from the target `model`, drafted by `draft`."""
    if draft is None:
        raise ValueError("speculative decoding needs a draft model (draft=...)")
    generator = torch.Generator().manual_seed(seed)
    probs = lambda logits: filtered_probs(logits, temperature, top_k, top_p)  # noqa: E731
    batch, max_len = prompt.shape[0], prompt.shape[1] + max_new_tokens + k + 1
    target_s, draft_s = (Session(m, batch, max_len, cache, window, compile) for m in (model, draft))
    if prompt.shape[1] > 1:
        target_s.prefill(prompt[:, :-1], last=1)
        draft_s.prefill(prompt[:, :-1], last=1)
    last, out, rounds, committed, row_accepted = prompt[:, -1], [], 0, 0, 0
    overlap, positions = 0.0, 0  # sum of min(p, q) over the positions each row's rule looked at
    while sum(t.shape[1] for t in out) < max_new_tokens:
        drafts, q, draft_snaps = _draft(draft_s, last, k, probs, generator)
        target_snap = target_s.snapshot()
        p = probs(target_s.prefill(torch.cat([last[:, None], drafts], 1)))  # (B, k+1, V)
        rows, nxt = accept(p.cpu(), q.cpu(), drafts.cpu(), generator)
        seen, looked = acceptance_overlap(p.cpu(), q.cpu(), rows)
        overlap, positions = overlap + seen, positions + looked
        n = int(rows.min())
        # a row that accepted more than n emits its own accepted draft at position n
        nxt = torch.where(rows > n, drafts[:, min(n, k - 1)].cpu(), nxt).to(prompt.device)
        out.append(torch.cat([drafts[:, :n], nxt[:, None]], 1))
        _roll_back(target_s, target_snap, draft_s, draft_snaps, last, drafts, n, k)
        last = nxt
        rounds, committed, row_accepted = rounds + 1, committed + n, row_accepted + int(rows.sum())
        recorder.emitted(n + 1, target_s.length, target_s.cache_bytes() + draft_s.cache_bytes())
    recorder.stats.extra.update(acceptance_rate=row_accepted / (rounds * k * batch), alpha=overlap / max(positions, 1),
                                mean_accepted_length=committed / rounds, rounds=float(rounds))
    return torch.cat(out, 1)[:, :max_new_tokens]


def acceptance_overlap(p: torch.Tensor, q: torch.Tensor, rows: torch.Tensor) -> tuple[float, int]:
    """Leviathan et al.'s acceptance probability beta = sum_x min(p(x), q(x)) (Theorem 3.5),
    summed over each row's drafted positions up to its first rejection (the prefixes the
    target's own output passes through), and how many positions that is. Their mean over a
    generation is alpha = E[beta] (Corollary 3.6), the rate Theorem 3.8 takes.
    p (R, k+1, V), q (R, k, V), rows (R,) accepted drafts per row."""
    k = q.shape[1]
    beta = torch.minimum(p[:, :k], q).sum(-1)  # (R, k)
    looked = torch.arange(k)[None, :] <= rows[:, None]  # accepted ones and the first rejection
    return float(beta[looked].sum()), int(looked.sum())


def _draft(session: Session, last: torch.Tensor, k: int, probs, generator):
    """k drafted tokens (B, k), their distributions q (B, k, V), and per-step
    snapshots (only for states that cannot be truncated)."""
    snaps = [session.snapshot()]
    token, tokens, qs = last, [], []
    for i in range(k):
        q = probs(session.step(token))  # (B, V)
        token = sample(q, generator)
        tokens.append(token)
        qs.append(q)
        if i + 1 < k:
            snaps.append(session.snapshot())
    return torch.stack(tokens, 1), torch.stack(qs, 1), snaps


def _roll_back(target: Session, target_snap, draft: Session, draft_snaps, last, drafts, n: int, k: int):
    """Leave both sessions having processed `last` and the n accepted drafts."""
    kept = torch.cat([last[:, None], drafts[:, :n]], 1)  # (B, n+1)
    if n < k:
        target.rollback(target_snap, kept)
    # the draft processed last and drafts[:k-1]; snapshot n was taken after last, drafts[:n-1]
    if n < k - 1:
        snap = draft_snaps[n + 1] if draft_snaps[n + 1].state is not None else draft_snaps[0]
        draft.rollback(snap, None if snap is draft_snaps[n + 1] else kept)
    elif n == k:
        draft.step(drafts[:, -1])


def accept(p: torch.Tensor, q: torch.Tensor, drafts: torch.Tensor, generator: torch.Generator):
    """The speculative sampling rule, vectorised over independent rows.

    p (R, k+1, V) target probabilities at each drafted position plus one;
    q (R, k, V) draft probabilities; drafts (R, k) drafted tokens.
    Returns n (R,) accepted drafts per row and the next token (R,): a draw from
    norm(max(0, p_n - q_n)) after a rejection at n, or from p_k when all k pass.
    """
    R, k = drafts.shape
    p_x = p[:, :k].gather(-1, drafts[..., None])[..., 0]
    q_x = q.gather(-1, drafts[..., None])[..., 0]
    u = torch.rand(R, k, generator=generator)
    # keep x iff u < p/q, probability min(1, p/q); q(x) > 0 since x was drawn from q
    rejected = u * q_x >= p_x
    n = torch.where(rejected.any(-1), rejected.float().argmax(-1), torch.full((R,), k))
    residual = torch.cat([(p[:, :k] - q).clamp(min=0), p[:, k:]], 1)  # (R, k+1, V)
    dist = residual[torch.arange(R), n]
    # p == q at the rejected position has zero residual; cannot happen after a
    # rejection (rejection needs p(x) < q(x)), but guard the normalisation anyway
    dist = torch.where(dist.sum(-1, keepdim=True) > 0, dist, p[torch.arange(R), n])
    return n, torch.multinomial(dist / dist.sum(-1, keepdim=True), 1, generator=generator)[:, 0]
