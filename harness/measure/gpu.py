"""GPU clocks, temperature and power around a case, to flag throttling (NVML)."""
from __future__ import annotations


def snapshot() -> dict[str, float] | None:
    """SM clock (MHz), max SM clock, temperature (C), power (W) and throttle reasons, or None.

    Each is read on its own: one call this pynvml or this driver lacks drops that
    field only, never the snapshot."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
    except Exception:  # no pynvml or no NVML access: nothing to report
        return None
    reads = {
        "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "sm_clock_max_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "throttle_reasons": lambda: _throttle_reasons(pynvml, handle),
    }
    values = {}
    for key, read in reads.items():
        try:
            values[key] = float(read())
        except Exception:  # NVMLError, or a function this pynvml lacks
            continue
    return values or None


def _throttle_reasons(pynvml, handle) -> int:
    # "clocks event reasons" is the newer name (pynvml >= 12); older ones have only the throttle name
    read = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
        pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return read(handle)


# Reasons that mean the clock was lowered for heat or power, not just idle.
_THROTTLING = 0x8 | 0x20 | 0x40 | 0x80  # power cap, hw slowdown, thermal (sw, hw)


def around(before: dict | None, after: dict | None) -> dict[str, float]:
    """Columns for a record: clocks and temperature before/after, and a throttled flag,
    each where both snapshots have it."""
    if not before or not after:
        return {}
    columns = {"sm_clock_before_mhz": before.get("sm_clock_mhz"), "sm_clock_after_mhz": after.get("sm_clock_mhz"),
               "temperature_before_c": before.get("temperature_c"), "temperature_after_c": after.get("temperature_c"),
               "power_after_w": after.get("power_w")}
    if "throttle_reasons" in before and "throttle_reasons" in after:
        reasons = int(before["throttle_reasons"]) | int(after["throttle_reasons"])
        columns["throttled"] = float(bool(reasons & _THROTTLING))
    return {k: v for k, v in columns.items() if v is not None}
