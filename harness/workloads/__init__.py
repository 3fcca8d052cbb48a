"""Workloads (op, model, generate, serve, train, classify); see base.Workload."""
from harness.workloads.base import get, names, params_of

__all__ = ["get", "names", "params_of"]
