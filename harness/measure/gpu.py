"""GPU clocks, temperature and power around a case, to flag throttling (NVML)."""
from __future__ import annotations


def snapshot() -> dict[str, float] | None:
    """SM clock (MHz), max SM clock, temperature (C), power (W) and throttle reasons, or None."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        return {
            "sm_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
            "sm_clock_max_mhz": float(pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)),
            "temperature_c": float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
            "power_w": pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
            "throttle_reasons": float(pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)),
        }
    except Exception:  # no pynvml or no NVML access: nothing to report
        return None


# Reasons that mean the clock was lowered for heat or power, not just idle.
_THROTTLING = 0x8 | 0x20 | 0x40 | 0x80  # power cap, hw slowdown, thermal (sw, hw)


def around(before: dict | None, after: dict | None) -> dict[str, float]:
    """Columns for a record: clocks and temperature before/after, and a throttled flag."""
    if not before or not after:
        return {}
    throttled = bool((int(before["throttle_reasons"]) | int(after["throttle_reasons"])) & _THROTTLING)
    return {
        "sm_clock_before_mhz": before["sm_clock_mhz"], "sm_clock_after_mhz": after["sm_clock_mhz"],
        "temperature_before_c": before["temperature_c"], "temperature_after_c": after["temperature_c"],
        "power_after_w": after["power_w"], "throttled": float(throttled),
    }
