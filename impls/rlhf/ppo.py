"""One PPO step for RLHF, in its three phases: rollout, scoring, update.

Four models: the policy (trained), a frozen reference (the policy before RL), a frozen
reward model and a value model (trained), the last two LMs with a scalar head. The
rollout samples fixed-length completions from the policy; scoring computes the policy's
and the reference's log-probabilities of them, the value of every state, the reward
model's score, the KL-penalised per-token rewards and the GAE advantages; the update
takes one optimizer step on the clipped policy loss plus the clipped value loss (one
epoch, the batch as one minibatch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from impls.decoding import generate
from impls.rlhf.heads import completion_logprobs, scores, values
from impls.rlhf.losses import gae, kl_penalised_rewards, ppo_policy_loss, value_loss, whiten


@dataclass
class PPOModels:
    policy: nn.Module
    reference: nn.Module
    reward: nn.Module
    value: nn.Module


@dataclass(frozen=True)
class PPOConfig:
    new_tokens: int = 8  # completion length L
    temperature: float = 1.0  # rollout sampling
    kl_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2  # policy ratio
    value_clip: float = 0.2
    value_coef: float = 0.5
    seed: int = 0  # the rollout's sampling


@dataclass
class Experience:
    sequences: torch.Tensor  # (B, P + L) prompt and completion
    prompt_len: int
    logp_old: torch.Tensor  # (B, L) policy log-probs at rollout
    values_old: torch.Tensor  # (B, L)
    advantages: torch.Tensor  # (B, L) whitened
    returns: torch.Tensor  # (B, L)
    score: torch.Tensor  # (B,) the reward model's
    kl: torch.Tensor  # () mean per-token log pi - log pi_ref


def rollout(policy: nn.Module, prompts: torch.Tensor, config: PPOConfig) -> torch.Tensor:
    """prompts (B, P) -> sequences (B, P + L): completions sampled from the policy."""
    completions = generate(policy, prompts, config.new_tokens, strategy="sampling",
                           temperature=config.temperature, seed=config.seed).tokens
    return torch.cat([prompts, completions], dim=1)


@torch.no_grad()
def score(models: PPOModels, sequences: torch.Tensor, prompt_len: int, config: PPOConfig) -> Experience:
    """Everything the update needs, from forward passes of all four models."""
    logp_old = completion_logprobs(models.policy, sequences, prompt_len)
    logp_reference = completion_logprobs(models.reference, sequences, prompt_len)
    values_old = values(models.value, sequences, prompt_len)
    reward_score = scores(models.reward, sequences)
    rewards = kl_penalised_rewards(reward_score, logp_old, logp_reference, config.kl_coef)
    advantages, returns = gae(rewards, values_old, config.gamma, config.lam)
    return Experience(sequences, prompt_len, logp_old, values_old, whiten(advantages), returns, reward_score,
                      (logp_old - logp_reference).mean())


def update(models: PPOModels, optimizer: torch.optim.Optimizer, experience: Experience,
           config: PPOConfig) -> dict[str, float]:
    """One optimizer step over the policy's and the value model's parameters; the losses."""
    e = experience
    policy_loss = ppo_policy_loss(completion_logprobs(models.policy, e.sequences, e.prompt_len), e.logp_old,
                                  e.advantages, config.clip)
    critic_loss = value_loss(values(models.value, e.sequences, e.prompt_len), e.values_old, e.returns,
                             config.value_clip)
    optimizer.zero_grad(set_to_none=True)
    (policy_loss + config.value_coef * critic_loss).backward()
    optimizer.step()
    return {"ppo_policy_loss": policy_loss.item(), "ppo_value_loss": critic_loss.item(),
            "ppo_kl": float(e.kl), "ppo_score": float(e.score.mean())}


def ppo_step(models: PPOModels, optimizer: torch.optim.Optimizer, prompts: torch.Tensor,
             config: PPOConfig) -> dict[str, float]:
    """Rollout, scoring and update, in order."""
    sequences = rollout(models.policy, prompts, config)
    return update(models, optimizer, score(models, sequences, prompts.shape[1], config), config)


def frozen(model: nn.Module) -> nn.Module:
    """`model` in eval mode with no parameter requiring a gradient (reference, reward)."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
