"""Serving: request traces, static / continuous batching, paged KV cache, on a simulated clock."""
