"""The environment a run was measured in (env.json), and its short id.

What only torch can say (its version as it reports it, its threads, the GPU) comes from
`torch_facts`, read in a worker: the runner collects the rest without importing torch."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from typing import Any


# Left out of env_id: when it was read, and which commit of seqbench ran (the
# commit is in env.json; the id names the machine and its software, so that a
# calibration or a comparison carries across commits on the same machine).
VOLATILE = ("load_average", "collected_at", "git_commit", "git_dirty", "gpu_clocks", "seqbench")
# Recorded as null on a CPU since they became fields of every env; a null one is left
# out of env_id, so that a CPU's id (and its calibration file) stays what it was.
NULL_ON_CPU = ("cuda", "driver")


def collect(device: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The env of a run on `device`; `facts`: torch_facts(device) as a worker read them (read
    here, importing torch, when not given)."""
    facts = torch_facts(device) if facts is None else facts
    env: dict[str, Any] = {
        "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # 1/5/15-minute load averages when the run started: on a shared machine, what else ran
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": device,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": facts["torch_threads"],
        "torch": facts["torch"],
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "flash_attn": _version("flash-attn"),
        "seqbench": _version("seqbench"),
        **_git(),
        **dict.fromkeys(NULL_ON_CPU),
        **facts.get("gpu", {}),
    }
    env["env_id"] = env_id(env)
    return env


def torch_facts(device: str) -> dict[str, Any]:
    """torch's version and default thread count, and on CUDA the GPU's description."""
    import torch

    facts: dict[str, Any] = {"torch": str(torch.__version__), "torch_threads": torch.get_num_threads()}  # str: no torch to unpickle it
    if device == "cuda" and torch.cuda.is_available():
        facts["gpu"] = _cuda()
    return facts


def env_id(env: dict[str, Any]) -> str:
    """Equal for runs on the same machine and software stack, whatever the time or commit."""
    stable = {k: v for k, v in env.items()
              if k not in VOLATILE and k != "env_id" and not (k in NULL_ON_CPU and v is None)}
    return hashlib.sha1(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _cuda() -> dict[str, Any]:
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    info = {"gpu": props.name, "gpu_count": torch.cuda.device_count(),
            "gpu_memory_bytes": props.total_memory, "compute_capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        driver = pynvml.nvmlSystemGetDriverVersion()
        info["driver"] = driver.decode() if isinstance(driver, bytes) else driver  # bytes in old pynvml
        info["gpu_clocks"] = {
            "sm_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "sm_now_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        }
        info["power_limit_w"] = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000
    except Exception as err:  # no pynvml or no NVML access: say so in the env
        info["nvml"] = f"unavailable: {type(err).__name__}"
    if not info.get("driver"):
        info["driver"] = _smi_driver()
    return info


def _smi_driver() -> str | None:
    """The driver version from nvidia-smi, for where pynvml is missing or fails."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(here: str = os.path.dirname(os.path.abspath(__file__))) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        # untracked files count (a new impl file changes what ran); ignored ones (results/) do not
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit or None, "git_dirty": bool(dirty) if commit else None}
