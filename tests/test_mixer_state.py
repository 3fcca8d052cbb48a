"""state_bytes counts every tensor reachable from a state, once."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impls.mixers.state import state_bytes


@dataclass
class Holder:
    a: torch.Tensor
    extra: dict


class Plain:
    def __init__(self, t):
        self.t = t
        self.n = 3


def test_counts_nested_containers_dataclasses_and_objects():
    f32 = torch.zeros(2, 3)                    # 24 bytes
    bf16 = torch.zeros(5, dtype=torch.bfloat16)  # 10 bytes
    i64 = torch.zeros(4, dtype=torch.long)     # 32 bytes
    state = [(f32, None), {"x": Holder(bf16, {"y": Plain(i64)})}]
    assert state_bytes(state) == 24 + 10 + 32


def test_tensor_reachable_twice_counts_once_and_empty_is_zero():
    t = torch.zeros(10)
    assert state_bytes((t, [t], {"same": t})) == 40
    assert state_bytes(None) == 0 and state_bytes([]) == 0
