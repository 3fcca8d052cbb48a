"""How things are measured: timing (timer), statistics (stats), memory (memory), GPU state (gpu)."""
