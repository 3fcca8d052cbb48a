"""env.json always has the CUDA and driver fields, and counts untracked files as dirty;
the GPU snapshot keeps every field it could read."""
from __future__ import annotations

import subprocess
import sys
import types

import pytest

from harness import env as environment
from harness.measure import gpu


def test_cpu_env_has_null_cuda_and_driver_and_they_leave_env_id_alone():
    env = environment.collect("cpu")
    assert "cuda" in env and "driver" in env and env["cuda"] is None and env["driver"] is None
    without = {k: v for k, v in env.items() if k not in ("cuda", "driver")}
    assert environment.env_id(without) == env["env_id"]  # a CPU's id as before the fields existed
    assert environment.env_id({**env, "driver": "550.54"}) != env["env_id"]


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_git_dirty_counts_untracked_files_but_not_ignored_ones(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("results/\n")
    git(tmp_path, "add", ".gitignore")
    git(tmp_path, "commit", "-q", "-m", "x")
    assert environment._git(str(tmp_path))["git_dirty"] is False
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "run.jsonl").write_text("{}")
    assert environment._git(str(tmp_path))["git_dirty"] is False
    (tmp_path / "new_impl.py").write_text("")
    assert environment._git(str(tmp_path))["git_dirty"] is True


class FakeNvml(types.SimpleNamespace):
    """pynvml as old versions are (no ClocksEventReasons), with one call that fails."""
    NVML_CLOCK_SM = 0
    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self): pass
    def nvmlDeviceGetHandleByIndex(self, index): return "handle"
    def nvmlDeviceGetClockInfo(self, handle, kind): return 1400
    def nvmlDeviceGetMaxClockInfo(self, handle, kind): return 1980
    def nvmlDeviceGetPowerUsage(self, handle): return 250_000
    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle): return 0x20  # hw slowdown

    def nvmlDeviceGetTemperature(self, handle, kind):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")


def test_gpu_snapshot_falls_back_to_throttle_reasons_and_keeps_the_fields_it_read(monkeypatch):
    import torch

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    snap = gpu.snapshot()
    assert snap == {"sm_clock_mhz": 1400.0, "sm_clock_max_mhz": 1980.0, "power_w": 250.0,
                    "throttle_reasons": float(0x20)}
    columns = gpu.around(snap, snap)
    assert columns["throttled"] == 1.0 and columns["sm_clock_after_mhz"] == 1400.0
    assert "temperature_after_c" not in columns


def test_gpu_snapshot_is_none_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert gpu.snapshot() is None
    assert gpu.around(None, None) == {}


@pytest.mark.parametrize("reasons, throttled", [(0x1, 0.0), (0x40, 1.0)])  # idle vs thermal
def test_around_flags_heat_and_power_only(reasons, throttled):
    snap = {"sm_clock_mhz": 1.0, "temperature_c": 50.0, "power_w": 1.0, "throttle_reasons": float(reasons)}
    assert gpu.around(snap, snap)["throttled"] == throttled
