"""The RLHF losses, batched. Each is checked against a float64 formula written out in
tests/test_rlhf.py.

Shapes: B sequences, L completion tokens; rollouts have a fixed length (no EOS), so no
mask is needed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected), the mean over pairs: the negative log-likelihood
    of the preferences under the Bradley-Terry model. chosen, rejected: (B,) scores."""
    return -F.logsigmoid(chosen - rejected).mean()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's loss (Rafailov et al., 2023): -log sigmoid(beta * (log-ratio of the chosen -
    log-ratio of the rejected)), the mean over pairs. Each input (B,) is a completion's
    summed log-probability under the policy or the frozen reference."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin).mean()


def kl_penalised_rewards(score: torch.Tensor, logp_policy: torch.Tensor, logp_reference: torch.Tensor,
                         kl_coef: float) -> torch.Tensor:
    """Per-token rewards (B, L): -kl_coef * (log pi - log pi_ref) at every token (the sampled
    estimate of the KL to the reference), plus the reward model's score (B,) at the last."""
    rewards = -kl_coef * (logp_policy - logp_reference)
    return torch.cat([rewards[:, :-1], rewards[:, -1:] + score[:, None]], dim=1)


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016) over a whole episode:
    advantages A_t = sum_k (gamma lam)^k delta_{t+k}, delta_t = r_t + gamma V_{t+1} - V_t,
    V_L = 0 (the episode ends), and returns A + V. rewards, values: (B, L).
    Computed as one matmul with the discount matrix instead of a loop over time."""
    L = rewards.shape[1]
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    deltas = rewards + gamma * next_values - values
    steps = torch.arange(L, device=rewards.device)
    ahead = steps[None, :] - steps[:, None]  # [t, s] = s - t: how far s lies after t
    discount = torch.where(ahead >= 0, (gamma * lam) ** ahead.clamp(min=0).to(deltas.dtype), 0.0)  # (L, L)
    advantages = deltas @ discount.T  # A[b, t] = sum_s discount[t, s] * delta[b, s]
    return advantages, advantages + values


def whiten(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x - mean, over its standard deviation (all elements)."""
    return (x - x.mean()) / (x.std() + eps)


def ppo_policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor,
                    clip: float) -> torch.Tensor:
    """PPO's clipped surrogate L^CLIP (Schulman et al., 2017), negated to be minimised:
    -mean(min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)), ratio = pi / pi_old per token."""
    ratio = (logp - logp_old).exp()
    clipped = ratio.clamp(1 - clip, 1 + clip)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean()


def value_loss(values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor,
               clip: float) -> torch.Tensor:
    """Clipped value loss: 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -clip, clip) - R)^2))."""
    clipped = values_old + (values - values_old).clamp(-clip, clip)
    return 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2).mean()
