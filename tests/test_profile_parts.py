"""The profiled pass's parts on made-up inputs: operator names to categories, the GPU timeline
(kernels, idle time, launch-bound), the allocator snapshot, NVML energy, the operator table and
the categories that moved between two runs. None needs a GPU."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness import metrics as catalogue
from harness.profile import attribution, cuda_memory, energy, moved, operators, store
from harness.profile.attribution import Span
from harness.profile.categories import (ATTENTION, CATEGORIES, COMMUNICATION, COPIES, ELEMENTWISE, HOST, MATMUL,
                                        OTHER, SOFTMAX, category)


@pytest.mark.parametrize("name, expected", [
    ("aten::bmm", MATMUL), ("aten::addmm", MATMUL), ("aten::linear", MATMUL),
    ("ampere_sgemm_128x64_nn", MATMUL), ("sm90_xmma_gemm_f16f16_f32", MATMUL), ("cutlass_80_tensorop_s1688gemm", MATMUL),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", ATTENTION), ("flash_fwd_kernel", ATTENTION),
    ("fmha_cutlassF_f32_aligned_64x64_rf_sm80", ATTENTION), ("_attn_fwd", ATTENTION),
    ("aten::_softmax", SOFTMAX), ("aten::sum", SOFTMAX), ("aten::native_layer_norm", SOFTMAX),
    ("void at::native::reduce_kernel<512, 1>", SOFTMAX), ("softmax_warp_forward", SOFTMAX),
    ("aten::mul", ELEMENTWISE), ("aten::add_", ELEMENTWISE), ("aten::gelu", ELEMENTWISE),
    ("void at::native::vectorized_elementwise_kernel<4>", ELEMENTWISE),
    ("aten::copy_", COPIES), ("aten::transpose", COPIES), ("aten::cat", COPIES), ("aten::view", COPIES),
    ("Memcpy HtoD (Pageable -> Device)", COPIES), ("Memset (Device)", COPIES),
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", COMMUNICATION), ("c10d::allreduce_", COMMUNICATION),
    ("autograd::engine::evaluate_function: MmBackward0", HOST), ("MmBackward0", HOST),
    ("aten::softmax_backward_data", SOFTMAX), ("something_unheard_of", OTHER),
])
def test_names_fall_into_their_category(name, expected):
    assert category(name) == expected


def test_every_category_has_a_catalogued_metric():
    for name in CATEGORIES:
        catalogue.get(f"profile_{name}_ms")


def test_host_timeline_gives_self_time_to_each_operator_and_gaps_to_host():
    matmul = Span("aten::matmul", 10, 50, [Span("aten::bmm", 12, 48)])
    softmax = Span("aten::softmax", 60, 80, [Span("aten::_softmax", 61, 79)])
    spent = attribution.host_timeline(Span("pass", 0, 100, [matmul, softmax]))
    assert spent[MATMUL] == pytest.approx(40) and spent[SOFTMAX] == pytest.approx(20)
    assert spent[HOST] == pytest.approx(40)  # 0-10, 50-60, 80-100
    assert sum(spent.values()) == pytest.approx(100)


def test_device_timeline_counts_overlap_once_and_idle_as_host():
    window = Span("pass", 0, 100)
    kernels = [Span("ampere_sgemm_64x64", 10, 30), Span("softmax_warp_forward", 25, 40),  # overlaps by 5
               Span("Memcpy DtoH", 90, 120)]  # runs past the window: clipped
    spent = attribution.device_timeline(window, kernels)
    assert spent[MATMUL] == 20 and spent[SOFTMAX] == 10 and spent[COPIES] == 10
    assert spent[HOST] == 60 and sum(spent.values()) == 100
    assert attribution.launch_bound(spent)
    busy = attribution.device_timeline(window, [Span("flash_fwd_kernel", 0, 95)])
    assert busy[ATTENTION] == 95 and not attribution.launch_bound(busy)


def test_adds_up_holds_within_the_stated_tolerance_only():
    assert attribution.adds_up({MATMUL: 10.0, HOST: 0.3}, 10.0)
    assert not attribution.adds_up({MATMUL: 12.0}, 10.0)


def _average(key, device="DeviceType.CPU", **values):
    fields = dict(self_cpu_time_total=0.0, cpu_time_total=0.0, self_device_time_total=0.0, device_time_total=0.0,
                  count=1, input_shapes=[], flops=0, self_cpu_memory_usage=0, self_device_memory_usage=0,
                  is_user_annotation=False)
    return SimpleNamespace(key=key, device_type=device, **(fields | values))


def test_operator_rows_are_per_call_with_kernels_apart_and_the_pass_left_out():
    rows = operators.rows([
        _average(operators.PASS_MARK, self_cpu_time_total=1e6),
        _average("aten::mm", self_cpu_time_total=4000, cpu_time_total=6000, count=4, flops=8e9,
                 input_shapes=[[64, 64], [64, 64]], self_cpu_memory_usage=16384, self_device_time_total=2000),
        _average("ampere_sgemm_64x64_nn", "DeviceType.CUDA", self_device_time_total=2000, device_time_total=2000,
                 count=4),
    ], calls=2)
    by_name = {row["operator"]: row for row in rows}
    assert set(by_name) == {"aten::mm", "ampere_sgemm_64x64_nn"}
    mm, kernel = by_name["aten::mm"], by_name["ampere_sgemm_64x64_nn"]
    assert (mm["kind"], mm["self_ms"], mm["total_ms"], mm["calls"], mm["flops"]) == ("operator", 2.0, 3.0, 2.0, 4e9)
    assert mm["bytes_allocated"] == 8192 and mm["device_self_ms"] == 1.0 and "64" in mm["input_shapes"]
    assert (kernel["kind"], kernel["category"], kernel["self_ms"]) == ("kernel", MATMUL, 1.0)


def test_memory_history_is_recorded_around_the_block_and_dumped(monkeypatch, tmp_path):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda.memory, "_record_memory_history",
                        lambda enabled="all", **kw: calls.append(("record", enabled, kw.get("max_entries"))))
    monkeypatch.setattr(torch.cuda.memory, "_dump_snapshot", lambda path: calls.append(("dump", path)))
    with cuda_memory.history(tmp_path / "snap.pickle"):
        calls.append(("work",))
    assert calls == [("record", "all", cuda_memory.MAX_ENTRIES), ("work",), ("dump", str(tmp_path / "snap.pickle")),
                     ("record", None, None)]
    calls.clear()
    with pytest.raises(ValueError), cuda_memory.history(tmp_path / "snap.pickle"):
        raise ValueError("the pass failed")
    assert [c[0] for c in calls] == ["record", "record"]  # history stopped, nothing dumped


def test_energy_is_joules_per_call_token_and_flop_from_the_counter(monkeypatch):
    monkeypatch.setattr(energy, "ENERGY_PASS_S", 0.01)
    joules = iter([100.0, 103.0])  # the counter before and after
    ran = []
    found = energy.measure(lambda: ran.append(1), lambda: None, call_ms=1.0, work={"tokens": 10, "flops": 1e9},
                           read=lambda: next(joules))
    assert len(ran) == 10
    assert found["profile_energy_j_per_call"] == pytest.approx(0.3)
    assert found["profile_energy_j_per_token"] == pytest.approx(0.03)
    assert found["profile_energy_j_per_flop"] == pytest.approx(3e-10)
    assert found["profile_power_w"] > 0
    catalogue.check(found)
    assert energy.measure(lambda: None, lambda: None, 1.0, {}, read=None) == {}


def test_energy_counter_is_none_without_nvml(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if absent
    assert energy.counter() is None


def _write_profile(run_dir, case_id, label, categories_ms, error=None):
    out = store.fresh(store.case_dir(run_dir, case_id))
    summary = {"case_id": case_id, "index": 0, "label": label, "impl": label, "workload": "op", "device": "cpu",
               "params": {"seq_len": 256}, "axes": ["seq_len"],
               "metrics": {f"profile_{name}_ms": ms for name, ms in categories_ms.items()}}
    if error:
        summary["error"] = error
    store.write(out, summary, [{"operator": "aten::mm", "self_ms": 1.0}])


def test_moves_name_the_categories_whose_share_changed(tmp_path):
    base, new = tmp_path / "base", tmp_path / "new"
    _write_profile(base, "a", "naive", {MATMUL: 5.0, SOFTMAX: 5.0})
    _write_profile(new, "a", "naive", {MATMUL: 9.0, SOFTMAX: 1.0})
    _write_profile(base, "b", "sdpa", {ATTENTION: 1.0, HOST: 1.0})
    _write_profile(new, "b", "sdpa", {ATTENTION: 2.0, HOST: 2.0})  # twice as slow, same shares: nothing moved
    found = moved.moves(base, new)
    assert {(m.case.split()[0], m.category) for m in found} == {("naive", MATMUL), ("naive", SOFTMAX)}
    assert "50% -> 90%" in str(next(m for m in found if m.category == MATMUL))
    assert moved.lines(base, new)[0].endswith("2 move(s)")
    assert moved.moves(base, tmp_path / "nothing") is None and moved.lines(base, tmp_path / "nothing") == []


def test_profiles_table_has_the_swept_params_and_errors(tmp_path):
    _write_profile(tmp_path, "a", "naive", {MATMUL: 1.0})
    _write_profile(tmp_path, "b", "sdpa", {}, error="RuntimeError: the profiler failed")
    frame = store.profiles(tmp_path)
    assert list(frame["seq_len"]) == [256, 256]
    assert list(frame["error"]) == ["", "RuntimeError: the profiler failed"]
    assert len(store.operators(tmp_path)) == 2


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_the_gpu_branch_writes_a_snapshot_and_reads_the_device_timeline(monkeypatch, tmp_path):
    """The pass as it runs on a GPU, wired on a CPU: CUDA activity requested, the allocator's
    history dumped, energy asked for, the device timeline used (no kernels here: all idle)."""
    import torch

    from harness.profile import profiled_pass
    from tests.conftest import make_case

    dumped = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda.memory, "_record_memory_history", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda.memory, "_dump_snapshot", lambda path: dumped.append(path))
    monkeypatch.setattr(energy, "counter", lambda: None)
    case = make_case("op", "attention", "naive", device="cuda", seq_len=16, batch=1, heads=1, head_dim=8)
    x = torch.randn(64, 64)
    found, rows = profiled_pass.profile_calls(case, lambda: x @ x, 1.0, {}, tmp_path)
    assert dumped == [str(tmp_path / store.MEMORY_SNAPSHOT)]
    assert found["files"]["memory_snapshot"] == store.MEMORY_SNAPSHOT
    assert found["metrics"]["profile_launch_bound"] == 1.0  # no kernel ran: the device sat idle
    assert found["categories_ms"][HOST] == pytest.approx(sum(found["categories_ms"].values()))
    assert any(row["operator"] == "aten::mm" for row in rows)
