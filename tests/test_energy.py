"""Energy around the timed region: RAPL through powercap where readable, NVML's counter on
NVIDIA GPUs (faked here: no GPU on the test machine), otherwise the reason in the record."""
from __future__ import annotations

import sys
import types

import torch

from harness.measure import energy


def _zone(root, name: str, uj: int, max_uj: int = 1_000_000):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(str(uj))
    (zone / "max_energy_range_uj").write_text(str(max_uj))
    return zone


def test_rapl_sums_package_zones_unwraps_the_counter_and_gives_joules_per_call_and_token(tmp_path):
    first = _zone(tmp_path, "intel-rapl:0", 900_000)
    second = _zone(tmp_path, "intel-rapl:1", 100)
    _zone(tmp_path, "intel-rapl:0:0", 5)  # a subzone (core): counted within its package already
    meter = energy.Meter("cpu", powercap=tmp_path)
    run = meter.counted(lambda: None)
    meter.start()
    for _ in range(4):
        run()
    (first / "energy_uj").write_text("100000")  # wrapped at 1 J: 0.2 J later
    (second / "energy_uj").write_text("200100")  # 0.2 J later
    out = meter.metrics(tokens_per_call=10)
    assert out["energy_counter"] == "rapl"
    assert abs(out["energy_j_per_call"] - 0.1) < 1e-9 and abs(out["energy_j_per_token"] - 0.01) < 1e-9


def test_without_powercap_the_record_says_why_and_the_call_is_not_wrapped(tmp_path):
    meter = energy.Meter("cpu", powercap=tmp_path / "absent")
    fn = lambda: None  # noqa: E731
    assert meter.counted(fn) is fn
    meter.start()
    assert "does not exist" in meter.metrics(5)["energy_not_measured"]


def test_an_unreadable_rapl_counter_is_a_reason_not_an_error(tmp_path):
    (tmp_path / "intel-rapl:0").mkdir()  # energy_uj missing, as when it is root-only and unreadable
    reason = energy.Meter("cpu", powercap=tmp_path).metrics(None)["energy_not_measured"]
    assert reason.startswith("RAPL energy counter not readable")


def _fake_nvml(monkeypatch, readings_mj: list[int] | None):
    fake = types.ModuleType("pynvml")
    state = {"i": 0}

    def total_energy(handle):
        if readings_mj is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        value = readings_mj[min(state["i"], len(readings_mj) - 1)]
        state["i"] += 1
        return value

    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetHandleByIndex = lambda index: ("gpu", index)
    fake.nvmlDeviceGetTotalEnergyConsumption = total_energy
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_nvml_energy_counter_gives_joules_per_call(monkeypatch):
    # read once when opened, once at start, once at the end: 2 J over 8 calls
    _fake_nvml(monkeypatch, [1_000_000, 1_000_000, 1_002_000])
    meter = energy.Meter("cuda")
    run = meter.counted(lambda: None)
    meter.start()
    for _ in range(8):
        run()
    out = meter.metrics(tokens_per_call=None)
    assert out == {"energy_counter": "nvml", "energy_j_per_call": 0.25}


def test_a_gpu_without_the_energy_counter_says_why(monkeypatch):
    _fake_nvml(monkeypatch, None)
    reason = energy.Meter("cuda").metrics(1)["energy_not_measured"]
    assert "NVML's energy counter is not readable" in reason and "NOT_SUPPORTED" in reason
