"""RLHF (impls/rlhf, harness/quality/preferences, the rlhf workload): every loss against a
float64 formula written out here, the model heads' offsets against per-prefix forwards, the
reward model learning the synthetic preferences, and one PPO and one DPO step on every LM
preset through the worker."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from harness import worker
from harness.quality import preferences
from harness.quality.training import Budget
from impls import models, registry
from impls.rlhf import ppo
from impls.rlhf.dpo import dpo_step
from impls.rlhf.heads import completion_logprobs, scores, values, with_scalar_head
from impls.rlhf.losses import (bradley_terry_loss, dpo_loss, gae, kl_penalised_rewards, ppo_policy_loss,
                               value_loss)
from tests.conftest import TINY_MEASURE, make_case

PRESETS = [n for n in registry.names("model") if not registry.get("model", n).fixed_size]
SHAPES = [(1, 1), (3, 5), (8, 17)]  # (B, L)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed)) * scale


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _close(actual: torch.Tensor, expected: float | torch.Tensor, tol: float = 1e-5) -> None:
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert torch.allclose(actual.double(), expected, rtol=tol, atol=tol), (actual, expected)


@pytest.mark.parametrize("B", [1, 4, 33])
def test_bradley_terry_matches_the_float64_formula(B):
    chosen, rejected = _randn(B, seed=B, scale=3), _randn(B, seed=B + 1, scale=3)
    expected = -sum(_log_sigmoid(float(c) - float(r)) for c, r in zip(chosen, rejected)) / B
    _close(bradley_terry_loss(chosen, rejected), expected)


@pytest.mark.parametrize("B", [1, 4, 33])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_matches_the_float64_formula(B, beta):
    pc, pr, rc, rr = (_randn(B, seed=B * 10 + i, scale=20) for i in range(4))  # summed log-probs
    expected = -sum(_log_sigmoid(beta * ((float(pc[i]) - float(rc[i])) - (float(pr[i]) - float(rr[i]))))
                    for i in range(B)) / B
    _close(dpo_loss(pc, pr, rc, rr, beta), expected)


def test_dpo_loss_is_log_2_when_the_policy_is_the_reference():
    logp = _randn(2, 5, seed=0, scale=10)
    _close(dpo_loss(logp[0], logp[1], logp[0], logp[1], beta=0.3), math.log(2), 1e-6)


def _gae_reference(rewards: torch.Tensor, values_: torch.Tensor, gamma: float, lam: float):
    """The recursion A_t = delta_t + gamma lam A_{t+1}, backwards, one scalar at a time."""
    B, L = rewards.shape
    advantages = [[0.0] * L for _ in range(B)]
    for b in range(B):
        running = 0.0
        for t in reversed(range(L)):
            next_value = float(values_[b, t + 1]) if t + 1 < L else 0.0
            delta = float(rewards[b, t]) + gamma * next_value - float(values_[b, t])
            running = delta + gamma * lam * running
            advantages[b][t] = running
    advantages = torch.tensor(advantages, dtype=torch.float64)
    return advantages, advantages + values_.double()


@pytest.mark.parametrize("B, L", SHAPES)
@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.99, 1.0), (0.9, 0.0)])
def test_gae_matches_the_backward_recursion(B, L, gamma, lam):
    rewards, values_ = _randn(B, L, seed=L), _randn(B, L, seed=L + 1)
    advantages, returns = gae(rewards, values_, gamma, lam)
    expected_advantages, expected_returns = _gae_reference(rewards, values_, gamma, lam)
    _close(advantages, expected_advantages)
    _close(returns, expected_returns)


@pytest.mark.parametrize("B, L", SHAPES)
def test_kl_penalised_rewards_add_the_score_at_the_last_token_only(B, L):
    score, logp, logp_ref = _randn(B, seed=1), _randn(B, L, seed=2), _randn(B, L, seed=3)
    expected = torch.tensor([[-0.2 * (float(logp[b, t]) - float(logp_ref[b, t])) + (float(score[b]) if t == L - 1 else 0)
                              for t in range(L)] for b in range(B)], dtype=torch.float64)
    _close(kl_penalised_rewards(score, logp, logp_ref, 0.2), expected)


def _ppo_reference(logp, logp_old, advantages, clip):
    """-mean over tokens of min(r A, clip(r) A), element by element in float64."""
    total, B, L = 0.0, *logp.shape
    for b in range(B):
        for t in range(L):
            ratio = math.exp(float(logp[b, t]) - float(logp_old[b, t]))
            a = float(advantages[b, t])
            total += min(ratio * a, min(max(ratio, 1 - clip), 1 + clip) * a)
    return -total / (B * L)


@pytest.mark.parametrize("B, L", SHAPES)
@pytest.mark.parametrize("clip", [0.1, 0.2])
def test_ppo_clipped_objective_matches_the_float64_formula(B, L, clip):
    logp_old = _randn(B, L, seed=5) - 2
    logp = logp_old + _randn(B, L, seed=6, scale=0.3)  # ratios inside and outside 1 +- clip
    advantages = _randn(B, L, seed=7)
    _close(ppo_policy_loss(logp, logp_old, advantages, clip), _ppo_reference(logp, logp_old, advantages, clip))


def test_ppo_clipping_stops_the_gradient_only_where_the_objective_is_clipped():
    logp_old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5])).requires_grad_()  # ratios 1.5 and 0.5
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])
    ppo_policy_loss(logp, logp_old, advantages, clip=0.2).backward()
    # r A is clipped (flat) where it would gain beyond the clip: r > 1.2 with A > 0, r < 0.8 with A < 0
    assert logp.grad[0] == 0 and logp.grad[3] == 0
    assert logp.grad[1] != 0 and logp.grad[2] != 0


@pytest.mark.parametrize("B, L", SHAPES)
def test_value_loss_matches_the_float64_formula(B, L):
    values_old, returns = _randn(B, L, seed=8), _randn(B, L, seed=9)
    values_ = values_old + _randn(B, L, seed=10, scale=0.5)
    expected = 0.0
    for b in range(B):
        for t in range(L):
            v, old, r = float(values_[b, t]), float(values_old[b, t]), float(returns[b, t])
            clipped = old + min(max(v - old, -0.2), 0.2)
            expected += 0.5 * max((v - r) ** 2, (clipped - r) ** 2)
    _close(value_loss(values_, values_old, returns, 0.2), expected / (B * L))


def _tiny(name: str = "transformer", seed: int = 0, vocab: int = 12) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.config(name, "model", vocab_size=vocab, d_model=16, n_layers=2, max_seq_len=32).build()


@pytest.mark.parametrize("name", ["transformer", "gru", "mamba"])
def test_heads_read_each_completion_token_from_its_own_prefix(name):
    """completion_logprobs and values against one forward per prefix (the model sees no later token)."""
    P, L = 5, 4
    tokens = torch.randint(0, 12, (3, P + L), generator=_gen(0))
    policy, value = _tiny(name), with_scalar_head(_tiny(name, seed=1))
    with torch.no_grad():
        logp, v, s = completion_logprobs(policy, tokens, P), values(value, tokens, P), scores(value, tokens)
        for t in range(L):
            prefix = tokens[:, :P + t]
            expected = policy(prefix)[:, -1].log_softmax(-1).gather(-1, tokens[:, P + t, None])[:, 0]
            _close(logp[:, t], expected, 1e-4)
            _close(v[:, t], value(prefix)[:, -1, 0], 1e-4)
        _close(s, value(tokens)[:, -1, 0], 1e-4)


def test_corrupt_changes_exactly_the_asked_number_of_positions():
    task = preferences.Task(seq_len=24, n_memorize=8, n_symbols=5)
    pairs = preferences.preference_pairs(task, 64, _gen(3))
    _, answers = preferences.prompts_and_answers(task, 64, _gen(3))
    assert (pairs.chosen_errors < pairs.rejected_errors).all()
    for completion, errors in ((pairs.chosen, pairs.chosen_errors), (pairs.rejected, pairs.rejected_errors)):
        assert torch.equal((completion[:, task.prompt_len:] != answers).sum(-1), errors)
        answer = completion[:, task.prompt_len:]
        assert ((answer >= 2) & (answer < 2 + task.n_symbols)).all()  # a changed symbol is still a symbol


RM_TASK = preferences.Task(seq_len=8, n_memorize=3, n_symbols=3)


def _reward_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return with_scalar_head(models.config("transformer", "model", vocab_size=RM_TASK.vocab_size, d_model=16,
                                          n_layers=2, max_seq_len=16).build())


def test_reward_model_learns_the_preferences_well_above_chance():
    reward = _reward_model()
    preferences.train_reward_model(reward, RM_TASK, 16, Budget(steps=100, lr=3e-3, warmup_steps=10), seed=0)
    result = preferences.preference_accuracy(reward, RM_TASK, 512, seed=0)
    assert result["preference_accuracy"] > 0.65, result  # chance: 0.5 (measured 0.81 at these settings)
    assert result["preference_loss"] < math.log(2) - 0.1


def test_reward_model_training_is_deterministic_under_its_seed():
    short = Budget(steps=8, lr=3e-3, warmup_steps=4, record_every=1)
    first, second = (preferences.train_reward_model(_reward_model(), RM_TASK, 16, short, seed=0).losses
                     for _ in range(2))
    assert first == second and len(first) == 8


def test_decoding_strategies_are_scored_beside_their_true_accuracy():
    task = preferences.Task(seq_len=16, n_memorize=4, n_symbols=4)
    policy, reward = _tiny(vocab=task.vocab_size), with_scalar_head(_tiny(vocab=task.vocab_size, seed=1))
    result = preferences.score_strategies(policy, reward, task, 8, 0, {"greedy": {"strategy": "greedy"},
                                                                       "beam": {"strategy": "beam", "width": 2}})
    assert set(result) == {f"{m}_{s}" for m in ("reward", "copy_accuracy") for s in ("truth", "greedy", "beam")}
    assert result["copy_accuracy_truth"] == 1.0


def _ppo_models(name: str = "transformer") -> ppo.PPOModels:
    policy, value = _tiny(name), with_scalar_head(_tiny(name, seed=1))
    return ppo.PPOModels(policy, ppo.frozen(copy.deepcopy(policy)), ppo.frozen(copy.deepcopy(value)), value)


def test_ppo_step_trains_policy_and_value_and_leaves_reference_and_reward_alone():
    models_ = _ppo_models()
    before = {name: [p.detach().clone() for p in getattr(models_, name).parameters()]
              for name in ("policy", "reference", "reward", "value")}
    optimizer = torch.optim.AdamW([*models_.policy.parameters(), *models_.value.parameters()], lr=1e-2)
    prompts = torch.randint(0, 12, (4, 6), generator=_gen(0))
    stats = ppo.ppo_step(models_, optimizer, prompts, ppo.PPOConfig(new_tokens=5))
    assert stats["ppo_kl"] == 0.0  # the first rollout: the policy is the reference
    assert abs(stats["ppo_policy_loss"]) < 1e-6  # ratio 1, whitened advantages: -mean(A) = 0
    for name, params in before.items():
        moved = any(not torch.equal(a, b) for a, b in zip(params, getattr(models_, name).parameters()))
        assert moved == (name in ("policy", "value")), name


def test_dpo_steps_start_at_log_2_and_learn_the_pairs():
    policy = _tiny()
    reference = ppo.frozen(copy.deepcopy(policy))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    chosen, rejected = torch.randint(0, 12, (2, 4, 9), generator=_gen(1))
    first = dpo_step(policy, reference, optimizer, chosen, rejected, prompt_len=5, beta=0.5)
    assert abs(first["dpo_loss"] - math.log(2)) < 1e-6
    for _ in range(20):
        last = dpo_step(policy, reference, optimizer, chosen, rejected, prompt_len=5, beta=0.5)
    assert last["dpo_loss"] < 0.5 * math.log(2) and last["dpo_reward_accuracy"] == 1.0


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_takes_a_ppo_and_a_dpo_step(name):
    models_ = _ppo_models(name)
    optimizer = torch.optim.AdamW([*models_.policy.parameters(), *models_.value.parameters()], lr=1e-2)
    stats = ppo.ppo_step(models_, optimizer, torch.randint(0, 12, (2, 4), generator=_gen(0)),
                         ppo.PPOConfig(new_tokens=3))
    assert all(math.isfinite(v) for v in stats.values()), stats
    chosen, rejected = torch.randint(0, 12, (2, 2, 7), generator=_gen(1))
    dpo = dpo_step(models_.policy, models_.reference, torch.optim.AdamW(models_.policy.parameters()), chosen,
                   rejected, prompt_len=4, beta=0.1)
    assert math.isfinite(dpo["dpo_loss"])


TINY_RLHF = {"d_model": 16, "n_layers": 1, "batch": 2, "seq_len": 8, "n_memorize": 2, "n_symbols": 3}


@pytest.mark.parametrize("algorithm", ["ppo", "dpo"])
def test_a_timed_step_goes_through_the_worker(algorithm):
    record = worker.execute(make_case("rlhf", "model", "transformer", measure=TINY_MEASURE, algorithm=algorithm,
                                      **TINY_RLHF))
    assert record.status == "ok", record.reason
    metrics = record.all_metrics()
    assert metrics["median_ms"] > 0 and metrics["peak_bytes"] > 0
    if algorithm == "ppo":
        assert all(metrics[phase] > 0 for phase in ("rollout_ms", "scoring_ms", "update_ms"))
    else:
        assert metrics["within_tolerance"] == 1.0  # the first step's loss was log 2


def test_reward_case_reports_accuracy_and_every_strategy():
    record = worker.execute(make_case("rlhf", "model", "gru", measure=TINY_MEASURE, algorithm="reward",
                                      steps=3, eval_samples=4, **TINY_RLHF))
    assert record.status == "ok", record.reason
    metrics = record.all_metrics()
    assert 0 <= metrics["preference_accuracy"] <= 1
    assert all(f"reward_{s}" in metrics for s in ("truth", "greedy", "beam", "sampling"))


def test_a_case_too_short_for_its_answer_is_skipped_with_the_reason():
    record = worker.execute(make_case("rlhf", "model", "transformer", measure=TINY_MEASURE, algorithm="dpo",
                                      **{**TINY_RLHF, "seq_len": 3}))
    assert record.status == "skipped" and "2 * n_memorize" in record.reason


def test_report_puts_each_architectures_rlhf_numbers_in_one_row():
    import pandas as pd

    from harness.report import rlhf as report_rlhf
    from harness.report.data import Section

    frame = pd.DataFrame([
        {"label": "gru", "run": "r", "status": "ok", "algorithm": "reward", "preference_accuracy": 0.75,
         **{f"reward_{s}": 0.1 * i for i, s in enumerate(report_rlhf.STRATEGIES)},
         **{f"copy_accuracy_{s}": 0.9 for s in report_rlhf.STRATEGIES}},
        {"label": "gru", "run": "r", "status": "ok", "algorithm": "ppo", "median_ms": 40.0, "rollout_ms": 10.0,
         "scoring_ms": 12.0, "update_ms": 17.0, "peak_extra_bytes": 3 * 2 ** 20},
        {"label": "gru", "run": "r", "status": "ok", "algorithm": "dpo", "median_ms": 12.5, "dpo_loss": 0.6,
         "peak_extra_bytes": 2 ** 20},
        {"label": "gru", "run": "r", "status": "error", "algorithm": "ppo", "median_ms": 1e9, "rollout_ms": 1e9},
    ])
    section = Section("rlhf", "model", frame, x="algorithm", facets=[], axes=["algorithm"], baseline=None,
                      runs=["r"])
    reward, steps = report_rlhf.parts(section)
    assert "0.75" in reward.html and "0.3" in reward.html  # accuracy, and the sampling reward (4th strategy)
    row = steps.html.split("<tbody>")[1]
    assert row.count("<tr>") == 1 and all(f"<td>{v}</td>" in row for v in ("40", "10", "12", "17", "3", "12.5", "1"))
    assert "1e+09" not in row  # a failed case is not a cost
    assert report_rlhf.parts(Section("op", "attention", frame, "algorithm", [], ["algorithm"], None)) == []
