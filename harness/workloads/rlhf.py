"""The `rlhf` workload: RLHF on a model preset, on synthetic preferences over selective
copying (harness.quality.preferences).

`algorithm` picks what a case does:
- `reward` (not timed): trains a reward model (the preset with a scalar head) with the
  Bradley-Terry loss and reports its held-out preference accuracy; trains a policy (the
  same preset) on the task and scores its greedy, beam and sampling answers with the
  reward model (reward_<strategy>, beside copy_accuracy_<strategy>, and both for the
  true answers, `truth`).
- `ppo`: one timed call is one PPO step (impls.rlhf.ppo) with policy, frozen reference,
  reward and value models, all of the preset, untrained (a step's cost does not depend on
  the weights: completions have a fixed length); rollout_ms, scoring_ms and update_ms are
  the median time of each phase over the calls.
- `dpo`: one timed call is one DPO step (impls.rlhf.dpo) on a batch of preference pairs;
  checked first: with the policy equal to the reference the loss must be log 2.
Steps run in fp32.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any, Callable, Literal

import torch
from pydantic import Field

from harness.case import Case
from harness.errors import Skip
from harness.quality import preferences
from harness.quality.lm_tasks import budget, log_metrics
from harness.workloads.base import Prepared, Workload, register_workload
from harness.workloads.builder import ModelSize, build_sized
from harness.workloads.train import TrainBudget
from impls.registry import Impl
from impls.rlhf import ppo
from impls.rlhf.dpo import dpo_step
from impls.rlhf.heads import with_scalar_head

DPO_CHECK_TOLERANCE = 1e-5  # |loss - log 2| with the policy equal to the reference, fp32


class RLHFParams(TrainBudget, ModelSize):
    algorithm: Literal["reward", "ppo", "dpo"] = "dpo"
    seq_len: int = Field(32, ge=2)  # selective copying: prompt and answer, seq_len + 1 tokens
    d_model: int = Field(64, ge=1)
    n_memorize: int = Field(8, ge=1)  # answer (completion) length
    n_symbols: int = Field(8, ge=2)
    beta: float = Field(0.1, gt=0)  # dpo
    kl_coef: float = Field(0.1, ge=0)  # ppo
    clip: float = Field(0.2, gt=0)
    value_clip: float = Field(0.2, gt=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    temperature: float = Field(1.0, gt=0)  # ppo rollouts and the reward case's sampling
    width: int = Field(4, ge=1)  # the reward case's beam
    policy_steps: int | None = Field(None, ge=1)  # the reward case's policy training; default: steps



@register_workload
class RLHF(Workload):
    name = "rlhf"
    families = {"model": RLHFParams}

    def prepare(self, case: Case, impl: Impl) -> Prepared:
        p: RLHFParams = case.typed
        if p.precision != "fp32":
            raise Skip(f"RLHF steps run in fp32 here; got {p.precision}")
        if p.seq_len < 2 * p.n_memorize:
            raise Skip(f"selective copying needs seq_len >= 2 * n_memorize; got {p.seq_len} and {p.n_memorize}")
        task = preferences.Task(p.seq_len, p.n_memorize, p.n_symbols)  # its vocabulary, not vocab_size, is used
        if p.algorithm == "reward":
            return Prepared(run=lambda: None, stats=lambda: _reward(case, p, task), timed=False)
        return (_prepare_ppo if p.algorithm == "ppo" else _prepare_dpo)(case, p, task)


def _model(case: Case, p: RLHFParams, task: preferences.Task) -> torch.nn.Module:
    return build_sized(case, p, task.vocab_size, task.total_len, backward=True)[0]


def _reward(case: Case, p: RLHFParams, task: preferences.Task) -> dict[str, Any]:
    reward = with_scalar_head(_model(case, p, task))
    log = log_metrics(preferences.train_reward_model(reward, task, p.batch, budget(p), p.seed))
    policy = _model(case, p, task)
    policy_budget = budget(p.model_copy(update={"steps": p.policy_steps or p.steps}))
    preferences.train_policy(policy, task, p.batch, policy_budget, p.seed)
    strategies = {"greedy": {"strategy": "greedy"}, "beam": {"strategy": "beam", "width": p.width},
                  "sampling": {"strategy": "sampling", "temperature": p.temperature, "seed": p.seed}}
    return {**preferences.preference_accuracy(reward, task, p.eval_samples, p.seed), **log,
            **preferences.score_strategies(policy, reward, task, p.eval_samples, p.seed, strategies)}


def _prepare_ppo(case: Case, p: RLHFParams, task: preferences.Task) -> Prepared:
    policy = _model(case, p, task)
    value = with_scalar_head(_model(case, p, task))
    models = ppo.PPOModels(policy, ppo.frozen(copy.deepcopy(policy)), ppo.frozen(copy.deepcopy(value)), value)
    optimizer = torch.optim.AdamW([*policy.parameters(), *value.parameters()], lr=p.lr)
    config = ppo.PPOConfig(new_tokens=p.n_memorize, temperature=p.temperature, kl_coef=p.kl_coef, gamma=p.gamma,
                           lam=p.lam, clip=p.clip, value_clip=p.value_clip, seed=p.seed)
    prompts, _ = preferences.prompts_and_answers(task, p.batch, torch.Generator().manual_seed(p.seed))
    prompts = prompts.to(case.device)
    phases: dict[str, list[float]] = {"rollout_ms": [], "scoring_ms": [], "update_ms": []}
    last: dict[str, float] = {}
    timed = _phase_timer(case.device)

    def run() -> None:
        sequences = timed(phases["rollout_ms"], lambda: ppo.rollout(policy, prompts, config))
        experience = timed(phases["scoring_ms"], lambda: ppo.score(models, sequences, task.prompt_len, config))
        last.update(timed(phases["update_ms"], lambda: ppo.update(models, optimizer, experience, config)))

    def stats() -> dict[str, float]:
        return {**{name: statistics.median(ms) for name, ms in phases.items() if ms}, **last}

    return Prepared(run=run, stats=stats, work={"tokens": float(p.batch * p.n_memorize)})


def _phase_timer(device: str) -> Callable[[list[float], Callable[[], Any]], Any]:
    """A function that runs a phase, appends its milliseconds to a list and returns its result
    (on a GPU it synchronises around the phase: the three syncs are part of the step's time)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(into: list[float], phase: Callable[[], Any]) -> Any:
        sync()
        start = time.perf_counter()
        result = phase()
        sync()
        into.append((time.perf_counter() - start) * 1e3)
        return result

    return timed


def _prepare_dpo(case: Case, p: RLHFParams, task: preferences.Task) -> Prepared:
    policy = _model(case, p, task)
    reference = ppo.frozen(copy.deepcopy(policy))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=p.lr)
    pairs = preferences.preference_pairs(task, p.batch, torch.Generator().manual_seed(p.seed))
    chosen, rejected = pairs.chosen.to(case.device), pairs.rejected.to(case.device)
    last: dict[str, float] = {}

    def run() -> None:
        last.update(dpo_step(policy, reference, optimizer, chosen, rejected, task.prompt_len, p.beta))

    def check() -> dict[str, float]:
        run()  # the first step: policy == reference, so every log-ratio is 0
        error = abs(last["dpo_loss"] - math.log(2))
        return {"max_abs_err": error, "rel_err": error / math.log(2), "tolerance": DPO_CHECK_TOLERANCE / math.log(2),
                "within_tolerance": float(error <= DPO_CHECK_TOLERANCE)}

    return Prepared(run=run, check=check, stats=lambda: dict(last),
                    work={"tokens": float(2 * p.batch * task.total_len)})
