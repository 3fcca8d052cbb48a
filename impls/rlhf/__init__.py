"""RLHF building blocks over any LanguageModel: a scalar head (reward and value models),
the losses (Bradley-Terry, DPO, PPO's clipped objective and value loss, GAE), and one
optimizer step of PPO and of DPO.

    reward = with_scalar_head(build())            # an LM whose head gives one number per position
    loss = bradley_terry_loss(scores(reward, chosen), scores(reward, rejected))
    stats = ppo_step(PPOModels(policy, reference, reward, value), optimizer, prompts, config)
    stats = dpo_step(policy, reference, optimizer, chosen, rejected, prompt_len, beta)
"""
