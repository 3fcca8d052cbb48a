"""The software and hardware a doctor run describes: versions, and the device's limits."""
from __future__ import annotations

from typing import Any

from harness import env as environment


def describe(device: str) -> list[tuple[str, str]]:
    """(what, value) pairs: versions of torch, CUDA, Triton, flash-attn and NVML, and on CUDA
    the GPU, its compute capability, clocks and power limit (NVML), else the CPU and threads."""
    env = environment.collect(device)
    rows = [("python", env["python"]), ("torch", env["torch"]), ("triton", env["triton"]),
            ("flash-attn", env["flash_attn"]), ("seqbench commit", _commit(env))]
    if device == "cuda":
        clocks = env.get("gpu_clocks") or {}
        rows += [("CUDA (torch built for)", env.get("cuda")), ("cuDNN", env.get("cudnn")),
                 ("driver", env.get("driver")), ("NVML", _nvml_version()),
                 ("GPU", f"{env.get('gpu')} x{env.get('gpu_count')}"),
                 ("compute capability", env.get("compute_capability")),
                 ("GPU memory", _gib(env.get("gpu_memory_bytes"))),
                 ("SM clock now / max (MHz)", _pair(clocks.get("sm_now_mhz"), clocks.get("sm_max_mhz"))),
                 ("memory clock max (MHz)", clocks.get("mem_max_mhz")),
                 ("power limit (W)", env.get("power_limit_w"))]
        if env.get("nvml"):
            rows.append(("NVML reads", env["nvml"]))
    rows += [("CPU", env["cpu_model"]), ("CPU threads (torch uses)", f"{env['cpu_count']} ({env['torch_threads']})")]
    return [(what, "not found" if value is None else str(value)) for what, value in rows]


def _nvml_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetNVMLVersion()
        return version.decode() if isinstance(version, bytes) else version
    except Exception as err:  # no pynvml, or no NVML access in this container: say which
        return f"unavailable ({type(err).__name__})"


def _commit(env: dict[str, Any]) -> str | None:
    commit = env.get("git_commit")
    return f"{commit[:10]}{' (uncommitted changes)' if env.get('git_dirty') else ''}" if commit else None


def _gib(value: Any) -> str | None:
    return f"{value / 2**30:.1f} GiB" if value else None


def _pair(now: Any, most: Any) -> str | None:
    return f"{now} / {most}" if now is not None or most is not None else None
