"""One DPO step (Rafailov et al., 2023): the policy's and the frozen reference's
log-probabilities of the chosen and the rejected completion of each pair, the DPO loss,
one optimizer step on the policy. No reward model, no sampling."""
from __future__ import annotations

import torch
from torch import nn

from impls.rlhf.heads import completion_logprobs
from impls.rlhf.losses import dpo_loss


def dpo_step(policy: nn.Module, reference: nn.Module, optimizer: torch.optim.Optimizer, chosen: torch.Tensor,
             rejected: torch.Tensor, prompt_len: int, beta: float) -> dict[str, float]:
    """chosen, rejected: (B, P + L), the same prompt in each pair. Returns the loss and the
    fraction of pairs whose implicit reward beta * log(pi / pi_ref) ranks chosen first."""
    pairs = torch.cat([chosen, rejected])  # one forward pass per model for both halves
    with torch.no_grad():
        reference_logp = completion_logprobs(reference, pairs, prompt_len).sum(-1)
    policy_logp = completion_logprobs(policy, pairs, prompt_len).sum(-1)
    B = chosen.shape[0]
    loss = dpo_loss(policy_logp[:B], policy_logp[B:], reference_logp[:B], reference_logp[B:], beta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    implicit = (policy_logp - reference_logp).detach()
    return {"dpo_loss": loss.item(), "dpo_reward_accuracy": float((implicit[:B] > implicit[B:]).float().mean())}
