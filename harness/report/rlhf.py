"""The rlhf workload's tables: the reward model and the decoding strategies it scores, and
the cost of a PPO step (by phase) and of a DPO step, one row per impl (and run, and point of
the other swept axes). The generic figures show one metric at a time; these put the
numbers of one architecture side by side."""
from __future__ import annotations

import pandas as pd

from harness.report.data import Section
from harness.report.page import Part
from harness.report.tables import html_table

STRATEGIES = ("truth", "greedy", "beam", "sampling")
MIB = 2 ** 20


def parts(section: Section) -> list[Part]:
    """The two tables, where the section has rlhf cases of that kind (none otherwise)."""
    if section.workload != "rlhf":
        return []
    ok = section.frame[section.frame["status"] == "ok"]
    found = []
    if "preference_accuracy" in ok and ok["preference_accuracy"].notna().any():
        found.append(Part("Reward model and decoding strategies", html=_reward_table(section, ok),
                          caption="Held-out preference pairs ranked right (chance 0.5); the reward model's mean "
                                  "score and the true copy accuracy of each strategy's answers, and of the true "
                                  "answers (truth)."))
    if any(c in ok and ok[c].notna().any() for c in ("rollout_ms", "dpo_loss")):
        found.append(Part("PPO and DPO step costs", html=_step_table(section, ok),
                          caption="Median ms per step; the PPO phases are each phase's median over the calls, so "
                                  "they need not add up to the step's. Peak: extra memory over the inputs (MiB)."))
    return found


def _key(section: Section, row: pd.Series) -> list[str]:
    others = [axis for axis in section.axes if axis != "algorithm"]
    point = ", ".join(f"{axis}={row[axis]}" for axis in others)
    return [row["label"]] + ([section.tag(row["run"])] if section.multi_run else []) + ([point] if others else [])


def _headers(section: Section) -> list[str]:
    others = [axis for axis in section.axes if axis != "algorithm"]
    return ["impl"] + (["run"] if section.multi_run else []) + (["point"] if others else [])


def _value(frame: pd.DataFrame, column: str, scale: float = 1.0) -> float | None:
    if column not in frame or not frame[column].notna().any():
        return None
    return float(frame[column].dropna().iloc[0]) / scale


def _grouped(section: Section, ok: pd.DataFrame, has: str) -> list[tuple[list[str], pd.DataFrame]]:
    rows = ok[ok[has].notna()] if has in ok else ok.iloc[0:0]
    keyed: dict[tuple, tuple[list[str], list[int]]] = {}
    for index, row in rows.iterrows():
        key = _key(section, row)
        keyed.setdefault(tuple(key), (key, []))[1].append(index)
    return [(key, rows.loc[indices]) for key, indices in keyed.values()]


def _reward_table(section: Section, ok: pd.DataFrame) -> str:
    rows = [key + [_value(group, "preference_accuracy")]
            + [_value(group, f"reward_{s}") for s in STRATEGIES] + [_value(group, f"copy_accuracy_{s}") for s in STRATEGIES]
            for key, group in _grouped(section, ok, "preference_accuracy")]
    headers = (_headers(section) + ["preference accuracy"] + [f"reward: {s}" for s in STRATEGIES]
               + [f"copy accuracy: {s}" for s in STRATEGIES])
    return html_table(headers, rows)


def _step_table(section: Section, ok: pd.DataFrame) -> str:
    timed = ok[ok["median_ms"].notna()] if "median_ms" in ok else ok.iloc[0:0]
    ppo = {tuple(k): g for k, g in _grouped(section, timed, "rollout_ms")}
    dpo = {tuple(k): g for k, g in _grouped(section, timed, "dpo_loss")}
    empty = ok.iloc[0:0]
    rows = []
    for key in dict.fromkeys([*ppo, *dpo]):
        p, d = ppo.get(key, empty), dpo.get(key, empty)
        rows.append(list(key) + [_value(p, "median_ms"), _value(p, "rollout_ms"), _value(p, "scoring_ms"),
                                 _value(p, "update_ms"), _value(p, "peak_extra_bytes", MIB),
                                 _value(d, "median_ms"), _value(d, "peak_extra_bytes", MIB)])
    headers = _headers(section) + ["PPO step ms", "rollout ms", "scoring ms", "update ms", "PPO peak MiB",
                                   "DPO step ms", "DPO peak MiB"]
    return html_table(headers, rows)
