"""Decoding-state operations on the real mixers' states: reorder picks batch
rows everywhere, truncation rolls KV caches back and keeps LMState's position."""
from __future__ import annotations

import torch

from impls.decoding import state_ops
from impls.mixers.kv_cache import GrowingKVCache, StaticKVCache, WindowKVCache
from impls.models.lm import LMState


def kv(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, length, 4, generator=g), torch.randn(batch, 2, length, 4, generator=g)


def test_reorder_picks_rows_of_caches_tuples_and_keeps_lmstate_position():
    grow, static = GrowingKVCache(), StaticKVCache(3, 2, 8, 4, "cpu")
    k, v = kv(3, 5)
    grow.update(k, v)
    static.update(k, v)
    hidden = (torch.arange(3.0)[:, None].expand(3, 4), torch.zeros(3, 4))
    state = LMState([grow, static, hidden])
    state.position = 5
    picked = state_ops.reorder_state(state, torch.tensor([2, 0, 0]))
    assert isinstance(picked, LMState) and picked.position == 5
    assert torch.equal(picked[0].k, k[[2, 0, 0]]) and picked[0].length == 5
    assert torch.equal(picked[1].k[:, :, :5], k[[2, 0, 0]]) and picked[1].length == 5
    assert picked[2][0][:, 0].tolist() == [2.0, 0.0, 0.0]
    assert torch.equal(grow.k, k)  # the original is untouched


def test_truncate_rolls_back_kv_caches_and_lmstate_position():
    grow, static = GrowingKVCache(), StaticKVCache(1, 2, 8, 4, "cpu")
    k, v = kv(1, 6)
    grow.update(k, v)
    static.update(k, v)
    state = LMState([grow, static])
    state.position = 6
    assert state_ops.truncatable(state)
    cut = state_ops.truncate_state(state, 4)
    assert cut.position == 4 and cut[0].length == 4 and cut[1].length == 4
    assert torch.equal(cut[0].k, k[:, :, :4])
    # the next update lands right after the kept tokens
    k2, v2 = kv(1, 1, seed=1)
    keys, _, _ = cut[1].update(k2, v2)
    assert torch.equal(keys, torch.cat([k[:, :, :4], k2], 2))


def test_window_caches_and_recurrent_states_are_not_truncatable():
    assert not state_ops.truncatable(LMState([WindowKVCache(4)]))
    assert not state_ops.truncatable(LMState([torch.zeros(1, 4)]))
    assert not state_ops.truncatable(LMState([GrowingKVCache(), (torch.zeros(1, 4),)]))
